-- Replicas as one broker: every committed change to what a broker process may cache is announced
-- on the channel keyward_changes, payload = the table name (src/store/changes.ts listens). A
-- trigger, not the broker, sends it, so changes made by `keyward` commands acting on the store
-- directly are announced too. NOTIFY is delivered at commit and never for a rolled-back change.
CREATE OR REPLACE FUNCTION keyward_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('keyward_changes', TG_TABLE_NAME);
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER policies_notify AFTER INSERT OR UPDATE OR DELETE ON "policies" FOR EACH STATEMENT EXECUTE FUNCTION keyward_notify_change();
--> statement-breakpoint
CREATE TRIGGER reference_values_notify AFTER INSERT OR UPDATE OR DELETE ON "reference_values" FOR EACH STATEMENT EXECUTE FUNCTION keyward_notify_change();
--> statement-breakpoint
CREATE TRIGGER signing_keys_notify AFTER INSERT OR UPDATE OR DELETE ON "signing_keys" FOR EACH STATEMENT EXECUTE FUNCTION keyward_notify_change();
--> statement-breakpoint
CREATE TRIGGER credentials_notify AFTER INSERT OR UPDATE OR DELETE ON "credentials" FOR EACH STATEMENT EXECUTE FUNCTION keyward_notify_change();
--> statement-breakpoint
CREATE TRIGGER aks_notify AFTER INSERT OR UPDATE OR DELETE ON "aks" FOR EACH STATEMENT EXECUTE FUNCTION keyward_notify_change();
--> statement-breakpoint
CREATE TRIGGER ek_list_notify AFTER INSERT OR UPDATE OR DELETE ON "ek_list" FOR EACH STATEMENT EXECUTE FUNCTION keyward_notify_change();
