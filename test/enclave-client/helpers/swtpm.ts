// The swtpm starter lives in scripts/lib (the demo uses it too); tests import it from here.
export * from '../../../scripts/lib/swtpm.js'
