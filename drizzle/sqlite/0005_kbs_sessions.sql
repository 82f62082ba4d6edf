CREATE TABLE `kbs_sessions` (
	`id` text PRIMARY KEY NOT NULL,
	`nonce_id` text NOT NULL,
	`tee` text NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`jti` text,
	`tee_pubkey` text
);
--> statement-breakpoint
CREATE INDEX `kbs_sessions_expires_at_idx` ON `kbs_sessions` (`expires_at`);--> statement-breakpoint
CREATE UNIQUE INDEX `kbs_sessions_jti_idx` ON `kbs_sessions` (`jti`);