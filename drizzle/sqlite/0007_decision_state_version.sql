CREATE TABLE `decision_state_version` (
	`id` integer PRIMARY KEY NOT NULL,
	`token` text NOT NULL
);
--> statement-breakpoint
-- The one row the decision path reads on every request (src/broker/decision-state.ts); its token
-- is replaced with a random one by any change to policies, reference values or quarantines.
INSERT INTO `decision_state_version` (`id`, `token`) VALUES (1, lower(hex(randomblob(16))));
--> statement-breakpoint
CREATE TRIGGER `policies_version_insert` AFTER INSERT ON `policies` BEGIN UPDATE `decision_state_version` SET `token` = lower(hex(randomblob(16))) WHERE `id` = 1; END;
--> statement-breakpoint
CREATE TRIGGER `policies_version_update` AFTER UPDATE ON `policies` BEGIN UPDATE `decision_state_version` SET `token` = lower(hex(randomblob(16))) WHERE `id` = 1; END;
--> statement-breakpoint
CREATE TRIGGER `policies_version_delete` AFTER DELETE ON `policies` BEGIN UPDATE `decision_state_version` SET `token` = lower(hex(randomblob(16))) WHERE `id` = 1; END;
--> statement-breakpoint
CREATE TRIGGER `reference_values_version_insert` AFTER INSERT ON `reference_values` BEGIN UPDATE `decision_state_version` SET `token` = lower(hex(randomblob(16))) WHERE `id` = 1; END;
--> statement-breakpoint
CREATE TRIGGER `reference_values_version_update` AFTER UPDATE ON `reference_values` BEGIN UPDATE `decision_state_version` SET `token` = lower(hex(randomblob(16))) WHERE `id` = 1; END;
--> statement-breakpoint
CREATE TRIGGER `reference_values_version_delete` AFTER DELETE ON `reference_values` BEGIN UPDATE `decision_state_version` SET `token` = lower(hex(randomblob(16))) WHERE `id` = 1; END;
--> statement-breakpoint
CREATE TRIGGER `quarantines_version_insert` AFTER INSERT ON `quarantines` BEGIN UPDATE `decision_state_version` SET `token` = lower(hex(randomblob(16))) WHERE `id` = 1; END;
--> statement-breakpoint
CREATE TRIGGER `quarantines_version_update` AFTER UPDATE ON `quarantines` BEGIN UPDATE `decision_state_version` SET `token` = lower(hex(randomblob(16))) WHERE `id` = 1; END;
--> statement-breakpoint
CREATE TRIGGER `quarantines_version_delete` AFTER DELETE ON `quarantines` BEGIN UPDATE `decision_state_version` SET `token` = lower(hex(randomblob(16))) WHERE `id` = 1; END;
