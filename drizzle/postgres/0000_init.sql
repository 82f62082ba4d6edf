CREATE TABLE "activations" (
	"id" text PRIMARY KEY NOT NULL,
	"ak_name" text NOT NULL,
	"secret_hash" text NOT NULL,
	"workload" text NOT NULL,
	"public_area" text NOT NULL,
	"ek_fingerprint" text,
	"expires_at" bigint NOT NULL,
	"used_at" bigint
);
--> statement-breakpoint
CREATE TABLE "aks" (
	"name" text PRIMARY KEY NOT NULL,
	"public_area" text NOT NULL,
	"workload" text NOT NULL,
	"via" text NOT NULL,
	"ek_fingerprint" text,
	"created_at" bigint NOT NULL,
	"revoked_at" bigint
);
--> statement-breakpoint
CREATE TABLE "attestations" (
	"jti" text PRIMARY KEY NOT NULL,
	"jkt" text NOT NULL,
	"tee" text NOT NULL,
	"policy" text NOT NULL,
	"policy_version" integer NOT NULL,
	"measurement" text NOT NULL,
	"reference_ids" text NOT NULL,
	"workload" text NOT NULL,
	"issued_at" bigint NOT NULL,
	"expires_at" bigint NOT NULL,
	"revoked_at" bigint
);
--> statement-breakpoint
CREATE TABLE "audit_log" (
	"seq" bigint PRIMARY KEY NOT NULL,
	"at" bigint NOT NULL,
	"type" text NOT NULL,
	"subject" text NOT NULL,
	"decision" text NOT NULL,
	"detail" text NOT NULL,
	"prev_hash" text NOT NULL,
	"hash" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "credentials" (
	"id" text PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"hash" text NOT NULL,
	"created_at" bigint NOT NULL,
	"revoked_at" bigint
);
--> statement-breakpoint
CREATE TABLE "nonces" (
	"id" text PRIMARY KEY NOT NULL,
	"created_at" bigint NOT NULL,
	"expires_at" bigint NOT NULL,
	"used_at" bigint
);
--> statement-breakpoint
CREATE TABLE "policies" (
	"name" text NOT NULL,
	"version" integer NOT NULL,
	"source" text NOT NULL,
	"sha256" text NOT NULL,
	"created_at" bigint NOT NULL,
	"created_by" text NOT NULL,
	"active" boolean NOT NULL,
	CONSTRAINT "policies_pk" PRIMARY KEY("name","version")
);
--> statement-breakpoint
CREATE TABLE "reference_values" (
	"id" text PRIMARY KEY NOT NULL,
	"set" text NOT NULL,
	"tee" text NOT NULL,
	"value" text NOT NULL,
	"source" text NOT NULL,
	"created_by" text NOT NULL,
	"created_at" bigint NOT NULL,
	"expires_at" bigint,
	"revoked_at" bigint,
	"revoked_by" text,
	"note" text
);
--> statement-breakpoint
CREATE TABLE "secret_versions" (
	"name" text NOT NULL,
	"version" integer NOT NULL,
	"ciphertext" "bytea" NOT NULL,
	"iv" "bytea" NOT NULL,
	"wrapped_key" "bytea" NOT NULL,
	"kek_id" text NOT NULL,
	"source" text,
	"created_at" bigint NOT NULL,
	"created_by" text NOT NULL,
	"deleted_at" bigint,
	"deleted_by" text,
	CONSTRAINT "secret_versions_pk" PRIMARY KEY("name","version")
);
--> statement-breakpoint
CREATE TABLE "signing_keys" (
	"kid" text PRIMARY KEY NOT NULL,
	"alg" text NOT NULL,
	"public_jwk" text NOT NULL,
	"sealed_private" text NOT NULL,
	"created_at" bigint NOT NULL,
	"retired_at" bigint
);
--> statement-breakpoint
CREATE TABLE "vault_leases" (
	"accessor" text PRIMARY KEY NOT NULL,
	"jti" text NOT NULL,
	"jkt" text NOT NULL,
	"policy" text NOT NULL,
	"reference_ids" text NOT NULL,
	"role" text NOT NULL,
	"created_at" bigint NOT NULL,
	"expires_at" bigint NOT NULL,
	"revoked_at" bigint
);
--> statement-breakpoint
CREATE TABLE "workloads" (
	"id" text PRIMARY KEY NOT NULL,
	"tee" text NOT NULL,
	"last_attested_at" bigint NOT NULL,
	"last_decision" text NOT NULL,
	"actual" text NOT NULL,
	"diverged_at" bigint
);
--> statement-breakpoint
CREATE INDEX "attestations_policy_idx" ON "attestations" USING btree ("policy");--> statement-breakpoint
CREATE INDEX "nonces_expires_at_idx" ON "nonces" USING btree ("expires_at");--> statement-breakpoint
CREATE UNIQUE INDEX "policies_one_active_idx" ON "policies" USING btree ("name") WHERE active;--> statement-breakpoint
CREATE INDEX "reference_values_set_idx" ON "reference_values" USING btree ("set");--> statement-breakpoint
CREATE INDEX "vault_leases_jkt_idx" ON "vault_leases" USING btree ("jkt");--> statement-breakpoint
CREATE INDEX "vault_leases_policy_idx" ON "vault_leases" USING btree ("policy");