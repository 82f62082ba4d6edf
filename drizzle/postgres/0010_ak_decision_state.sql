-- TPM attestation keys and the EK allow/deny list join the decision state (src/broker/decision-state.ts):
-- the broker caches the AK rows and EK entries an attestation reads under the same token, so an AK
-- revocation, an enrolment decision or an EK denial changes the token in the same transaction.
CREATE TRIGGER aks_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "aks" FOR EACH STATEMENT EXECUTE FUNCTION keyward_bump_decision_state();
--> statement-breakpoint
CREATE TRIGGER ek_list_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "ek_list" FOR EACH STATEMENT EXECUTE FUNCTION keyward_bump_decision_state();
