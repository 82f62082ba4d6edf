CREATE TABLE "nonce_count" (
	"id" integer PRIMARY KEY NOT NULL,
	"n" bigint NOT NULL
);
--> statement-breakpoint
-- The outstanding-challenge cap reads this row instead of count(*) over "nonces" (src/store/schema.ts
-- pgNonceCount). Triggers, not the broker, keep it, so rows an operator or a `keyward` command
-- deletes by SQL are counted too. The lock holds inserts by running brokers (they wait) until
-- the migration commits, so the first count misses none; migrations run in one transaction.
LOCK TABLE "nonces" IN SHARE ROW EXCLUSIVE MODE;
--> statement-breakpoint
INSERT INTO "nonce_count" ("id", "n") SELECT 1, count(*) FROM "nonces";
--> statement-breakpoint
CREATE OR REPLACE FUNCTION keyward_count_nonces() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  delta bigint;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    UPDATE "nonce_count" SET "n" = 0 WHERE "id" = 1;
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN
    SELECT count(*) INTO delta FROM added;
  ELSE
    SELECT -count(*) INTO delta FROM removed;
  END IF;
  -- A statement that changed no row (a prune with nothing to prune) leaves the row unlocked.
  IF delta <> 0 THEN
    UPDATE "nonce_count" SET "n" = "n" + delta WHERE "id" = 1;
  END IF;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER nonces_count_insert AFTER INSERT ON "nonces" REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION keyward_count_nonces();
--> statement-breakpoint
CREATE TRIGGER nonces_count_delete AFTER DELETE ON "nonces" REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION keyward_count_nonces();
--> statement-breakpoint
CREATE TRIGGER nonces_count_truncate AFTER TRUNCATE ON "nonces" FOR EACH STATEMENT EXECUTE FUNCTION keyward_count_nonces();
