/**
 * Checking a TPM's EK certificate against the TPM manufacturers' CAs the fleet trusts: a folder of PEM files
 * (roots and intermediates; Infineon's, Nuvoton's, STMicro's ... and, in tests, swtpm's local CA). The chain is
 * built from the EK certificate up through the folder's certificates to a self-signed one, each link's
 * signature and validity period checked. Users of Keylime and tpm2-tools complain most about chains that were
 * never validated and about messages that do not say which CA is missing: both are answered here.
 */
import { X509Certificate } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EnrollmentError } from '../../protocol/enrollment.ts';

/** An EK certificate (or the CA folder) that does not hold up: the kiosk is told why, with 403. */
export class EkCertificateError extends EnrollmentError {
  constructor(code: string, message: string) {
    super(code, message, false, 403);
  }
}

export interface TrustedCas {
  dir: string;
  certs: X509Certificate[];
}

/** Every certificate in the folder's .pem/.crt/.cer files (a file may hold several). */
export async function loadTrustedCas(dir: string): Promise<TrustedCas> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => /\.(pem|crt|cer)$/i.test(n)).sort();
  } catch (e) {
    throw new EkCertificateError('NoTpmCaFolder', `cannot read the TPM manufacturer CA folder ${dir}: ${(e as Error).message}`);
  }
  const certs: X509Certificate[] = [];
  for (const n of names) {
    const text = await readFile(join(dir, n), 'utf8');
    const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    for (const b of blocks) {
      try {
        certs.push(new X509Certificate(b));
      } catch (e) {
        throw new EkCertificateError('BadTpmCa', `${join(dir, n)} holds a certificate that does not parse: ${(e as Error).message}`);
      }
    }
  }
  if (certs.length === 0) throw new EkCertificateError('NoTpmCa', `the TPM manufacturer CA folder ${dir} holds no certificates (.pem files with BEGIN CERTIFICATE blocks)`);
  return { dir, certs };
}

export interface EkChain {
  ek: X509Certificate;
  /** Issuers, nearest first, ending with the self-signed root. */
  chain: X509Certificate[];
}

/** Parses the DER EK certificate and verifies its chain to a trusted root, or says exactly what is wrong. */
export function verifyEkCertificate(der: Uint8Array, cas: TrustedCas, now = Date.now()): EkChain {
  let ek: X509Certificate;
  try {
    ek = new X509Certificate(Buffer.from(der));
  } catch (e) {
    throw new EkCertificateError('BadEkCertificate', `the EK certificate does not parse as X.509: ${(e as Error).message}`);
  }
  const valid = (c: X509Certificate, what: string) => {
    if (Date.parse(c.validFrom) > now) throw new EkCertificateError('EkCertificateNotYetValid', `${what} (${c.subject.replace(/\n/g, ', ')}) is valid only from ${c.validFrom}: check the clock`);
    if (Date.parse(c.validTo) < now) throw new EkCertificateError('EkCertificateExpired', `${what} (${c.subject.replace(/\n/g, ', ')}) expired on ${c.validTo}`);
  };
  valid(ek, 'the EK certificate');
  const chain: X509Certificate[] = [];
  let current = ek;
  for (let depth = 0; depth < 8; depth++) {
    const issuer = cas.certs.find((c) => current.checkIssued(c) && current.verify(c.publicKey));
    if (!issuer) {
      const named = cas.certs.some((c) => c.subject === current.issuer);
      throw new EkCertificateError(
        'UnknownTpmCa',
        named
          ? `the signature of ${depth === 0 ? 'the EK certificate' : current.subject.replace(/\n/g, ', ')} does not verify with the CA named ${current.issuer.replace(/\n/g, ', ')} in ${cas.dir}`
          : `the EK certificate is issued by ${current.issuer.replace(/\n/g, ', ')}, which is not among the TPM manufacturer CAs in ${cas.dir}: add that manufacturer's CA certificate (PEM) there`,
      );
    }
    valid(issuer, 'the CA certificate');
    chain.push(issuer);
    if (issuer.checkIssued(issuer)) return { ek, chain };
    current = issuer;
  }
  throw new EkCertificateError('UnknownTpmCa', `the EK certificate's chain is longer than 8 certificates without reaching a root in ${cas.dir}`);
}
