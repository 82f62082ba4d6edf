CREATE TABLE "ek_list" (
	"id" text PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"ek" text NOT NULL,
	"workload" text,
	"created_at" bigint NOT NULL,
	"created_by" text NOT NULL,
	"note" text
);
--> statement-breakpoint
CREATE TABLE "enrolment_tokens" (
	"id" text PRIMARY KEY NOT NULL,
	"workload" text NOT NULL,
	"created_at" bigint NOT NULL,
	"created_by" text NOT NULL,
	"expires_at" bigint NOT NULL,
	"used_at" bigint,
	"used_by" text
);
--> statement-breakpoint
ALTER TABLE "activations" ADD COLUMN "enrol_token_hash" text;--> statement-breakpoint
ALTER TABLE "activations" ADD COLUMN "ek_pub_digest" text;--> statement-breakpoint
ALTER TABLE "aks" ADD COLUMN "status" text DEFAULT 'enrolled' NOT NULL;--> statement-breakpoint
ALTER TABLE "aks" ADD COLUMN "enrolled_by" text;--> statement-breakpoint
ALTER TABLE "aks" ADD COLUMN "ek_pub_digest" text;--> statement-breakpoint
ALTER TABLE "attestations" ADD COLUMN "ak_name" text;--> statement-breakpoint
CREATE INDEX "ek_list_ek_idx" ON "ek_list" USING btree ("ek");--> statement-breakpoint
-- Names registered before enrolment were chosen by the registrant: they wait for an admin (keyward enrol approve).
UPDATE "aks" SET "status" = 'pending' WHERE "via" = 'credential-activation';
