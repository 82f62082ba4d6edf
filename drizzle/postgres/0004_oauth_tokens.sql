CREATE TABLE "oauth_tokens" (
	"jti" text PRIMARY KEY NOT NULL,
	"attestation_jti" text NOT NULL,
	"client_id" text NOT NULL,
	"jkt" text NOT NULL,
	"resource" text NOT NULL,
	"scope" text NOT NULL,
	"issued_at" bigint NOT NULL,
	"expires_at" bigint NOT NULL,
	"revoked_at" bigint
);
--> statement-breakpoint
CREATE INDEX "oauth_tokens_expires_at_idx" ON "oauth_tokens" USING btree ("expires_at");