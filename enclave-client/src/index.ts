// @keyward/enclave-client: attested secret delivery for workloads (docs/protocol.md).
export { createClient } from './client.js'
export type { ClientOptions, KeywardClient, Attestation, VaultToken, ToolCredential, EvidenceRequest, Renewal, ClientAttestation, AccessToken } from './client.js'
export {
  KeywardError,
  isKeywardError,
  BrokerError,
  DeniedError,
  NetworkError,
  TimeoutError,
  ProtocolError,
  DecryptError,
  CollectorError,
  ClientConfigError,
  ClientClosedError,
} from './errors.js'
export type { ErrorCode, DenialFailure } from './errors.js'
export { createSessionKey, KEY_ALGS } from './session-key.js'
export type { SessionKey, KeyAlg } from './session-key.js'
export { detectPlatform, createCollector, parseTee, PLATFORM_PROBES } from './platform.js'
export type { CollectorOptions } from './platform.js'
export { createTpmCollector, DEFAULT_TCTI, DEFAULT_EVENT_LOG } from './collectors/tpm.js'
export type { TpmCollector, TpmCollectorOptions, TpmRegistration } from './collectors/tpm.js'
export { DEFAULT_PCR_SELECTION } from './collectors/tpm-args.js'
export type { Collector, CollectRequest } from './collectors/types.js'
export { requestAgentStatement, runtimeStateDigest } from './runtime-state.js'
export type { RuntimeState, RuntimeStateSource, StatementRequest } from './runtime-state.js'
export type { Tee } from '../../src/protocol/tee.js'
