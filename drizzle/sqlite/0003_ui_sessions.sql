CREATE TABLE `ui_sessions` (
	`id` text PRIMARY KEY NOT NULL,
	`credential_id` text NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE `workloads` ADD `baseline` text;--> statement-breakpoint
CREATE INDEX `audit_log_at_idx` ON `audit_log` (`at`);