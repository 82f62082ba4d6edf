CREATE TABLE "ui_sessions" (
	"id" text PRIMARY KEY NOT NULL,
	"credential_id" text NOT NULL,
	"created_at" bigint NOT NULL,
	"expires_at" bigint NOT NULL
);
--> statement-breakpoint
ALTER TABLE "workloads" ADD COLUMN "baseline" text;--> statement-breakpoint
CREATE INDEX "audit_log_at_idx" ON "audit_log" USING btree ("at");