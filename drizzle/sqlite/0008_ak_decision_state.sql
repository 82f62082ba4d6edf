-- TPM attestation keys and the EK allow/deny list join the decision state (src/broker/decision-state.ts):
-- the broker caches the AK rows and EK entries an attestation reads under the same token, so an AK
-- revocation, an enrolment decision or an EK denial changes the token in the same transaction.
CREATE TRIGGER `aks_version_insert` AFTER INSERT ON `aks` BEGIN UPDATE `decision_state_version` SET `token` = lower(hex(randomblob(16))) WHERE `id` = 1; END;
--> statement-breakpoint
CREATE TRIGGER `aks_version_update` AFTER UPDATE ON `aks` BEGIN UPDATE `decision_state_version` SET `token` = lower(hex(randomblob(16))) WHERE `id` = 1; END;
--> statement-breakpoint
CREATE TRIGGER `aks_version_delete` AFTER DELETE ON `aks` BEGIN UPDATE `decision_state_version` SET `token` = lower(hex(randomblob(16))) WHERE `id` = 1; END;
--> statement-breakpoint
CREATE TRIGGER `ek_list_version_insert` AFTER INSERT ON `ek_list` BEGIN UPDATE `decision_state_version` SET `token` = lower(hex(randomblob(16))) WHERE `id` = 1; END;
--> statement-breakpoint
CREATE TRIGGER `ek_list_version_update` AFTER UPDATE ON `ek_list` BEGIN UPDATE `decision_state_version` SET `token` = lower(hex(randomblob(16))) WHERE `id` = 1; END;
--> statement-breakpoint
CREATE TRIGGER `ek_list_version_delete` AFTER DELETE ON `ek_list` BEGIN UPDATE `decision_state_version` SET `token` = lower(hex(randomblob(16))) WHERE `id` = 1; END;
