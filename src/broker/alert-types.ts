// The events a webhook may subscribe to (docs/operations.md §Alerts).
export const ALERT_TYPES = ['drift', 'denial-after-allow', 'revocation', 'enrolment-request', 'containment'] as const
export type AlertType = (typeof ALERT_TYPES)[number]
