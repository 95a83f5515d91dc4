// "Delete account…" at the bottom of Settings: what goes, a code texted to my phone, then
// the deletion itself. The API signs this device out on success, and the app goes back to the
// sign-in screen, which says the account was deleted.

import { type FormEvent, useState } from "react";
import type { ChatClient } from "../client";
import { formatPhone } from "../phone";
import type { Challenge } from "../protocol";
import { type Situation, explain } from "./explain";
import { Resend } from "./Login";

/** The code asked for, and when another may be. */
interface Sent {
  challenge: Challenge;
  resendAtMs: number;
}

type Step = { kind: "closed" } | { kind: "explained" } | { kind: "code"; sent: Sent };

export function DeleteAccount({ client, phone }: { client: ChatClient; phone: string }) {
  const [step, setStep] = useState<Step>({ kind: "closed" });
  const [code, setCode] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function attempt(situation: Situation, action: () => Promise<void>) {
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (caught) {
      setError(explain(caught, situation));
    } finally {
      setBusy(false);
    }
  }

  const sendCode = () => attempt("request-code", async () => {
    const challenge = await client.requestAccountDeletion();
    setStep({ kind: "code", sent: { challenge, resendAtMs: Date.now() + challenge.resend_after * 1000 } });
    setCode("");
  });

  async function deleteNow(event: FormEvent) {
    event.preventDefault();
    if (step.kind !== "code") return;
    const challengeId = step.sent.challenge.challenge_id;
    await attempt("verify-code", () => client.deleteAccount(challengeId, code.trim()));
  }

  function cancel() {
    setStep({ kind: "closed" });
    setCode("");
    setError(null);
  }

  return (
    <div className="delete-account">
      {step.kind === "closed" ? (
        <button type="button" className="danger" onClick={() => setStep({ kind: "explained" })}>Delete account…</button>
      ) : (
        <>
          <p><strong>Deleting your account can't be undone.</strong> It deletes at once:</p>
          <ul>
            <li>your messages, in every chat;</li>
            <li>your place in every chat and group, your name and settings, and the people you blocked;</li>
            <li>every device signed in as you, this one included.</li>
          </ul>
          <p className="hint">
            People you chatted with one to one keep the chat, without your messages. Your number can sign up
            again later, as a new account.
          </p>
          {step.kind === "explained" ? (
            <div className="actions">
              <button type="button" className="danger" disabled={busy} onClick={() => void sendCode()}>Send code</button>
              <button type="button" className="link" onClick={cancel}>Cancel</button>
            </div>
          ) : (
            <form onSubmit={deleteNow} aria-label="Confirm account deletion">
              <p>To confirm, enter the code we sent to <strong>{formatPhone(phone)}</strong>.</p>
              <label>
                Code
                <input inputMode="numeric" autoComplete="one-time-code" value={code} required autoFocus
                  onChange={(e) => setCode(e.target.value)} />
              </label>
              <button type="submit" className="danger strong" disabled={busy || code.trim() === ""}>
                Delete my account
              </button>
              <div className="actions">
                <Resend atMs={step.sent.resendAtMs} busy={busy} onResend={() => void sendCode()} />
                <button type="button" className="link" onClick={cancel}>Cancel</button>
              </div>
            </form>
          )}
        </>
      )}
      {error && <p role="alert" className="error">{error}</p>}
    </div>
  );
}
