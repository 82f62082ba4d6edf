// The error classes and stable codes of keyward, re-exported for the broker's modules. They live in
// src/protocol/errors.ts (shared with the enclave client); their HTTP statuses live in the HTTP
// layer (src/broker/http/errors.ts), so nothing here knows of transport.
export * from './protocol/errors.js'
