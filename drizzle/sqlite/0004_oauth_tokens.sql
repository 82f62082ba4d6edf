CREATE TABLE `oauth_tokens` (
	`jti` text PRIMARY KEY NOT NULL,
	`attestation_jti` text NOT NULL,
	`client_id` text NOT NULL,
	`jkt` text NOT NULL,
	`resource` text NOT NULL,
	`scope` text NOT NULL,
	`issued_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`revoked_at` integer
);
--> statement-breakpoint
CREATE INDEX `oauth_tokens_expires_at_idx` ON `oauth_tokens` (`expires_at`);