import { type FormEvent, useEffect, useMemo, useState } from "react";
import { type Api, ApiError } from "../api";
import { countryChoices, defaultRegion, formatPhone, type Region, toE164 } from "../phone";
import type { Challenge } from "../protocol";
import { explain, formatWait, retryAfterSeconds, type Situation } from "./explain";
import "./login.css";

interface Props {
  api: Api;
  stage: string;
  /** Why this device was signed out, if it says ("Your account was deleted."). */
  notice?: string | null;
}

/** The challenge being answered: the number it went to, and when the client may ask again. */
interface Pending {
  challenge: Challenge;
  phone: string; // E.164
  resendAtMs: number;
}

/** Phone number → one-time code → signed in. On the local stack no SMS leaves the machine:
 * the code the console sender "sent" is shown here instead. */
export function Login({ api, stage, notice }: Props) {
  const [region, setRegion] = useState<Region>(() => defaultRegion());
  const [typed, setTyped] = useState("");
  const [pending, setPending] = useState<Pending | null>(null);
  const [resent, setResent] = useState(false);
  const [code, setCode] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const devCode = useDevCode(api, stage === "local" ? pending : null);

  async function requestCode(event: FormEvent) {
    event.preventDefault();
    const result = toE164(typed, region);
    if ("problem" in result) {
      setError(result.problem); // worded before any request: nothing was sent
      return;
    }
    await attempt("request-code", () => sendCode(result.phone));
  }

  async function resendCode() {
    if (!pending) return;
    await attempt("request-code", async () => {
      await sendCode(pending.phone);
      setResent(true);
    });
  }

  /** A new challenge replaces the one on screen (the server supersedes the old one too). */
  async function sendCode(phone: string) {
    const challenge = await api.requestCode(phone);
    setPending({ challenge, phone, resendAtMs: Date.now() + challenge.resend_after * 1000 });
    setCode("");
  }

  async function verify(event: FormEvent) {
    event.preventDefault();
    if (!pending) return;
    const challengeId = pending.challenge.challenge_id;
    await attempt("verify-code", () => api.verifyCode(challengeId, code.trim(), deviceName()));
  }

  function useAnotherNumber() {
    setPending(null);
    setResent(false);
    setError(null);
  }

  async function attempt(situation: Situation, action: () => Promise<void>) {
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (caught) {
      setError(explain(caught, situation));
      // A refused resend waits as long as the server says before it is offered again.
      const wait = caught instanceof ApiError && caught.code === "rate_limited" ? retryAfterSeconds(caught) : undefined;
      if (wait !== undefined) setPending((now) => now && { ...now, resendAtMs: Date.now() + wait * 1000 });
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="login">
      <h1>Ephemera</h1>
      <p className="tagline">Messages that are gone when they should be.</p>
      {notice && !pending && <p role="status" className="signed-out-notice" data-testid="signed-out-notice">{notice}</p>}
      {!pending ? (
        <form onSubmit={requestCode} aria-label="Sign in" noValidate>
          <PhoneInput region={region} onRegion={setRegion} value={typed} onChange={setTyped} />
          <button type="submit" disabled={busy}>Send code</button>
        </form>
      ) : (
        <form onSubmit={verify} aria-label="Enter code">
          <p>
            We sent {resent ? "a new code" : "a code"} to <strong>{formatPhone(pending.phone)}</strong>.
          </p>
          {devCode && (
            <p className="dev-code" data-testid="dev-code">
              Local stack, no SMS sent: your code is <code>{devCode}</code>{" "}
              <button type="button" className="link" onClick={() => setCode(devCode)}>Use it</button>
            </p>
          )}
          <label>
            Code
            <input inputMode="numeric" autoComplete="one-time-code" value={code}
              onChange={(e) => setCode(e.target.value)} required autoFocus />
          </label>
          <button type="submit" disabled={busy}>Sign in</button>
          <div className="login-actions">
            <Resend atMs={pending.resendAtMs} busy={busy} onResend={resendCode} />
            <button type="button" className="link" onClick={useAnotherNumber}>Use another number</button>
          </div>
        </form>
      )}
      {error && <p role="alert" className="error">{error}</p>}
    </main>
  );
}

/** The country whose national format is read, then the number: a "+…" number overrides it. */
function PhoneInput({ region, onRegion, value, onChange }: {
  region: Region;
  onRegion: (region: Region) => void;
  value: string;
  onChange: (value: string) => void;
}) {
  const choices = useMemo(countryChoices, []);
  return (
    <div className="phone-field">
      <label htmlFor="login-phone">Phone number</label>
      <div className="phone-row">
        <select aria-label="Country" value={region} onChange={(e) => onRegion(e.target.value as Region)}>
          {choices.map((choice) => <option key={choice.region} value={choice.region}>{choice.label}</option>)}
        </select>
        <input id="login-phone" type="tel" autoComplete="tel" value={value}
          onChange={(e) => onChange(e.target.value)} placeholder={region === "US" ? "415 555 0100" : ""}
          aria-describedby="login-phone-hint" required autoFocus />
      </div>
      <span id="login-phone-hint" className="phone-hint">Numbers abroad: start with + and the country code.</span>
    </div>
  );
}

/** A countdown until a new code may be asked for, then the button that asks. */
export function Resend({ atMs, busy, onResend }: { atMs: number; busy: boolean; onResend: () => void }) {
  const left = useSecondsUntil(atMs);
  if (left > 0) return <span className="resend-wait" data-testid="resend-wait">Resend code in {formatWait(left)}</span>;
  return <button type="button" className="link" disabled={busy} onClick={onResend}>Resend code</button>;
}

/** Whole seconds from now until `atMs`, ticking down to 0 (then it stops ticking). */
function useSecondsUntil(atMs: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    setNow(Date.now());
    if (atMs <= Date.now()) return;
    const timer = setInterval(() => {
      const current = Date.now();
      setNow(current);
      if (current >= atMs) clearInterval(timer);
    }, 1000);
    return () => clearInterval(timer);
  }, [atMs]);
  return Math.max(0, Math.ceil((atMs - now) / 1000));
}

/** The newest code in the local stack's outbox for the pending number, sent after its challenge. */
function useDevCode(api: Api, pending: Pending | null): string | null {
  const [code, setCode] = useState<string | null>(null);
  const phone = pending?.phone ?? null;
  const challengeId = pending?.challenge.challenge_id ?? null;
  useEffect(() => {
    setCode(null);
    if (!phone || !challengeId) return;
    let cancelled = false;
    const requestedAt = Date.now() - 60_000; // tolerate a clock a little off the server's
    const look = async () => {
      try {
        const [newest] = await api.devOutbox(phone);
        if (!cancelled && newest && newest.sent_at >= requestedAt) setCode(newest.code);
      } catch {
        // not the local stage after all: the user types the code from the SMS
      }
    };
    void look();
    return () => {
      cancelled = true;
    };
  }, [api, phone, challengeId]);
  return code;
}

function deviceName(): string {
  const agent = navigator.userAgent;
  const browser = /Firefox/.test(agent) ? "Firefox" : /Edg\//.test(agent) ? "Edge" : /Chrom/.test(agent) ? "Chrome" : /Safari/.test(agent) ? "Safari" : "Browser";
  return `${browser} (web)`;
}
