import { type FormEvent, useEffect, useState } from "react";
import type { Api } from "../api";
import type { Challenge } from "../protocol";
import { explain } from "./explain";

interface Props {
  api: Api;
  stage: string;
}

/** Phone number → one-time code → signed in. On the local stack no SMS leaves the machine:
 * the code the console sender "sent" is shown here instead. */
export function Login({ api, stage }: Props) {
  const [phone, setPhone] = useState("");
  const [challenge, setChallenge] = useState<Challenge | null>(null);
  const [code, setCode] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const devCode = useDevCode(api, stage === "local" && challenge ? phone : null, challenge);

  async function requestCode(event: FormEvent) {
    event.preventDefault();
    await attempt(async () => {
      setChallenge(await api.requestCode(phone));
      setCode("");
    });
  }

  async function verify(event: FormEvent) {
    event.preventDefault();
    if (!challenge) return;
    await attempt(() => api.verifyCode(challenge.challenge_id, code.trim(), deviceName()));
  }

  async function attempt(action: () => Promise<void>) {
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (caught) {
      setError(explain(caught));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="login">
      <h1>Ephemera</h1>
      <p className="tagline">Messages that are gone when they should be.</p>
      {!challenge ? (
        <form onSubmit={requestCode} aria-label="Sign in">
          <label>
            Phone number
            <input type="tel" autoComplete="tel" value={phone} onChange={(e) => setPhone(e.target.value)}
              placeholder="+1 415 555 0100" required autoFocus />
          </label>
          <button type="submit" disabled={busy}>Send code</button>
        </form>
      ) : (
        <form onSubmit={verify} aria-label="Enter code">
          <p>We sent a code to <strong>{phone}</strong>.</p>
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
          <button type="button" className="link" onClick={() => setChallenge(null)}>Use another number</button>
        </form>
      )}
      {error && <p role="alert" className="error">{error}</p>}
    </main>
  );
}

/** The newest code in the local stack's outbox for this phone, sent after the challenge. */
function useDevCode(api: Api, phone: string | null, challenge: Challenge | null): string | null {
  const [code, setCode] = useState<string | null>(null);
  useEffect(() => {
    setCode(null);
    if (!phone || !challenge) return;
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
  }, [api, phone, challenge]);
  return code;
}

function deviceName(): string {
  const agent = navigator.userAgent;
  const browser = /Firefox/.test(agent) ? "Firefox" : /Edg\//.test(agent) ? "Edge" : /Chrom/.test(agent) ? "Chrome" : /Safari/.test(agent) ? "Safari" : "Browser";
  return `${browser} (web)`;
}
