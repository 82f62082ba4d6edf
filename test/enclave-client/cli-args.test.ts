// keyward-client argument parsing, secret targets, tmpfs placement and platform detection.
import { describe, it, expect } from 'vitest'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { defaultStateDir, parseCli, parseSecretSpec } from '../../enclave-client/src/cli/args.js'
import { createSecretWriter, isTmpfs, pickSecretsBase } from '../../enclave-client/src/cli/secret-files.js'
import { detectPlatform, createCollector } from '../../enclave-client/src/platform.js'
import { ClientConfigError } from '../../enclave-client/src/errors.js'

const env = { KEYWARD_BROKER: 'http://127.0.0.1:1' }

describe('parseCli', () => {
  it('parses run with repeated secrets, global options anywhere and the command after --', () => {
    const a = parseCli(
      ['--tee', 'tpm', 'run', '--secret', 'db=env:DB_PASS', '--tcti', 'swtpm:host=127.0.0.1,port=9', '--secret', 'tls.key=file:/run/secrets/tls.key', '--vault-role', 'web', '--', 'node', '-e', 'x', '--secret', 'kept'],
      env,
    )
    expect(a.command).toBe('run')
    expect(a.broker).toBe('http://127.0.0.1:1')
    expect(a.tee).toBe('tpm')
    expect(a.tcti).toBe('swtpm:host=127.0.0.1,port=9')
    expect(a.secrets).toEqual([
      { name: 'db', kind: 'env', target: 'DB_PASS' },
      { name: 'tls.key', kind: 'file', target: '/run/secrets/tls.key' },
    ])
    expect(a.vaultRole).toBe('web')
    expect(a.exec).toEqual(['node', '-e', 'x', '--secret', 'kept'])
  })

  it('credential --resource URL [--scope S] asks for an OAuth access token; a tool beside it, a fragment or --scope alone are usage errors', () => {
    expect(parseCli(['credential', '--resource', 'https://tools.example/mcp', '--scope', 'tools:call'], env)).toMatchObject({ command: 'credential', positionals: [], resource: 'https://tools.example/mcp', scope: 'tools:call' })
    expect(() => parseCli(['credential', 'github', '--resource', 'https://tools.example/mcp'], env)).toThrow(ClientConfigError)
    expect(() => parseCli(['credential', '--resource', 'https://tools.example/mcp#x'], env)).toThrow(ClientConfigError)
    expect(() => parseCli(['credential', '--resource', 'not a url'], env)).toThrow(ClientConfigError)
    expect(() => parseCli(['credential', 'github', '--scope', 'x'], env)).toThrow(ClientConfigError)
  })

  it('parses get, credential, register and numeric options', () => {
    expect(parseCli(['get', 'db', '--out', '/tmp/x', '--timeout', '500', '--retries', '0'], env)).toMatchObject({ command: 'get', positionals: ['db'], out: '/tmp/x', timeoutMs: 500, retries: 0 })
    expect(parseCli(['credential', 'github', '--key-alg', 'RSA-OAEP-256'], env)).toMatchObject({ command: 'credential', positionals: ['github'], keyAlg: 'RSA-OAEP-256' })
    expect(parseCli(['register', '--workload', 'web', '--ek-alg', 'ecc', '--ek-handle', '0x81010001'], env)).toMatchObject({ command: 'register', workload: 'web', ekAlg: 'ecc', ekHandle: '0x81010001' })
    expect(parseCli(['evidence'], {})).toMatchObject({ command: 'evidence', broker: undefined })
  })

  it.each([
    [['run', '--secret', 'db=env:X']], // no command
    [['run', '--', 'true']], // nothing to fetch
    [['run', '--secret', 'a=env:X', '--secret', 'b=env:X', '--', 'true']], // one var, two secrets
    [['get']],
    [['get', 'a', 'b']],
    [['register']],
    [['attest', '--', 'true']],
    [['bogus']],
    [['attest', '--nope']],
    [['attest', '--timeout', 'soon']],
    [['attest', '--tee', 'sgx']],
    [['attest', '--key-alg', 'HS256']],
    [['attest', '--cert', 'c.pem']],
    [['attest', '--ek-alg', 'dsa']],
    [['attest', '--ek-handle', '0x01c00002']],
  ])('rejects %j', (argv) => {
    expect(() => parseCli(argv, env)).toThrow(ClientConfigError)
  })

  it('requires a broker except for evidence', () => {
    expect(() => parseCli(['attest'], {})).toThrow(/--broker/)
  })

  it('parses secret specs strictly', () => {
    expect(parseSecretSpec('a_b-1.x=file:rel/name')).toEqual({ name: 'a_b-1.x', kind: 'file', target: 'rel/name' })
    for (const bad of ['db', 'db=env:', 'db=env:1X', 'db=env:A-B', 'db=file:../etc/passwd', 'db=file:/a/../b', 'db=file:.', 'db=file:/', 'db=file:dir/', 'db=file:a//b', 'db=file:./x', '-db=env:X', 'db=vault:X']) {
      expect(() => parseSecretSpec(bad), bad).toThrow(ClientConfigError)
    }
  })

  it('picks a state dir from the environment, root or XDG', () => {
    expect(defaultStateDir({ KEYWARD_STATE_DIR: '/s' }, 1000)).toBe('/s')
    expect(defaultStateDir({}, 0)).toBe('/var/lib/keyward-client')
    expect(defaultStateDir({ XDG_STATE_HOME: '/x' }, 1000)).toBe('/x/keyward-client')
  })
})

describe('secret files', () => {
  it('writes mode 0600 files and relative targets into a private dir on tmpfs when there is one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kw-sf-'))
    const p = join(dir, 'sub', 'secret')
    const w = createSecretWriter()
    await w.write(p, new TextEncoder().encode('v1'))
    expect(await readFile(p, 'utf8')).toBe('v1')
    expect((await stat(p)).mode & 0o777).toBe(0o600)
    expect((await stat(join(dir, 'sub'))).mode & 0o777).toBe(0o700)
    const sd = createSecretWriter()
    const rel = await sd.resolve('name.txt')
    expect(rel.startsWith(sd.dir!)).toBe(true)
    expect((await stat(sd.dir!)).mode & 0o777).toBe(0o700)
    const { tmpfs } = await pickSecretsBase()
    expect(sd.onTmpfs).toBe(tmpfs)
    if (await isTmpfs('/dev/shm')) expect(sd.dir!.startsWith('/dev/shm/')).toBe(true)
    await sd.write(rel, new Uint8Array([1]))
    sd.cleanup()
    await expect(stat(sd.dir!)).rejects.toThrow()
    // No tmpfs among the candidates: falls back to the temp dir and says so.
    expect(await pickSecretsBase([dir])).toEqual({ base: tmpdir(), tmpfs: false })
    await rm(dir, { recursive: true, force: true })
  })
})

describe('platform detection', () => {
  it('prefers Nitro, then SEV-SNP configfs-tsm, then the TPM resource manager', async () => {
    const has = (paths: string[]) => async (p: string) => paths.includes(p)
    expect(await detectPlatform(has(['/dev/tpmrm0']))).toBe('tpm')
    expect(await detectPlatform(has(['/dev/tpmrm0', '/sys/kernel/config/tsm/report']))).toBe('sev-snp')
    expect(await detectPlatform(has(['/dev/tpmrm0', '/dev/nsm']))).toBe('nitro')
    expect(await detectPlatform(has([]))).toBeUndefined()
  })

  it('needs a state dir for the TPM collector', async () => {
    await expect(createCollector('tpm', {})).rejects.toBeInstanceOf(ClientConfigError)
    const c = await createCollector('tpm', { tpm: { stateDir: '/nonexistent', tcti: 'device:/dev/tpmrm99' } })
    expect(c.tee).toBe('tpm')
    expect(await c.available()).toBe(false)
  })

  it('builds the Nitro and SEV-SNP collectors on demand', async () => {
    expect((await createCollector('nitro')).tee).toBe('nitro')
    expect((await createCollector('sev-snp')).tee).toBe('sev-snp')
  })
})
