CREATE TABLE "decision_state_version" (
	"id" integer PRIMARY KEY NOT NULL,
	"token" text NOT NULL
);
--> statement-breakpoint
-- The one row the decision path reads on every request (src/broker/decision-state.ts); its token
-- is replaced with a random one by any change to policies, reference values or quarantines. The
-- new token commits with the change, so a reader that still sees the old one also sees the old rows.
INSERT INTO "decision_state_version" ("id", "token") VALUES (1, gen_random_uuid()::text);
--> statement-breakpoint
CREATE OR REPLACE FUNCTION keyward_bump_decision_state() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "decision_state_version" SET "token" = gen_random_uuid()::text WHERE "id" = 1;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER policies_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "policies" FOR EACH STATEMENT EXECUTE FUNCTION keyward_bump_decision_state();
--> statement-breakpoint
CREATE TRIGGER reference_values_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "reference_values" FOR EACH STATEMENT EXECUTE FUNCTION keyward_bump_decision_state();
--> statement-breakpoint
CREATE TRIGGER quarantines_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "quarantines" FOR EACH STATEMENT EXECUTE FUNCTION keyward_bump_decision_state();
