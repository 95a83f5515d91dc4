import { type FormEvent, useEffect, useState } from "react";
import type { ChatClient } from "../client";
import type { NotificationPermissionState, Notifier } from "../notifications";
import type { Block, Settings as Toggles } from "../protocol";
import { type ChatState, blockList, memberName } from "../store";
import { exportFileName, saveJson } from "../exportFile";
import { DeleteAccount } from "./DeleteAccount";
import { displayNameProblem } from "./explain";
import { useAction } from "./useAction";
import "./account.css";

interface Props {
  client: ChatClient;
  state: ChatState;
  phone: string;
  onClose: () => void;
}

const DATE = new Intl.DateTimeFormat([], { dateStyle: "medium" });

/** My name, who may reach me and see my reads, notifications, the people I blocked, a copy of
 * my data, and deleting my account. */
export function Settings({ client, state, phone, onClose }: Props) {
  useEffect(() => {
    void client.refreshSettings();
  }, [client]);
  const profile = state.profile;

  return (
    <div className="settings">
      <header className="chat-header">
        <h2>Settings</h2>
        <button type="button" className="link close-pane" onClick={onClose}>Close settings</button>
      </header>
      <div className="settings-body">
        {profile ? (
          <>
            <DisplayName client={client} current={profile.display_name} phone={phone} />
            <Privacy client={client} settings={profile.settings} />
          </>
        ) : (
          <p className="placeholder" role="status">Loading your settings…</p>
        )}
        <Notifications notifier={client.notifications} />
        <BlockedPeople client={client} blocks={blockList(state)} />
        <YourData client={client} />
        <DangerZone client={client} phone={phone} />
      </div>
    </div>
  );
}

function DisplayName({ client, current, phone }: { client: ChatClient; current: string | null; phone: string }) {
  const [name, setName] = useState(current ?? "");
  const [problem, setProblem] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);
  const { run, busy, error } = useAction();

  async function save(event: FormEvent) {
    event.preventDefault();
    setSaved(false);
    const invalid = displayNameProblem(name);
    setProblem(invalid);
    if (invalid) return;
    if (await run(() => client.updateProfile({ display_name: name.trim() }))) {
      setName(name.trim());
      setSaved(true);
    }
  }

  return (
    <section className="settings-section" aria-labelledby="settings-profile">
      <h3 id="settings-profile">Profile</h3>
      <form className="display-name" onSubmit={save}>
        <label>
          Display name
          <input value={name} maxLength={80} autoComplete="nickname" aria-describedby="display-name-hint"
            onChange={(e) => {
              setName(e.target.value);
              setSaved(false);
            }} />
        </label>
        <button type="submit" disabled={busy || name.trim() === (current ?? "")}>Save</button>
      </form>
      <p className="hint" id="display-name-hint">
        Shown instead of your number ({phone}) to people you chat with.
      </p>
      {(problem ?? error) && <p role="alert" className="error">{problem ?? error}</p>}
      {saved && <p role="status" className="saved">Saved.</p>}
    </section>
  );
}

function Privacy({ client, settings: saved }: { client: ChatClient; settings: Toggles }) {
  const { run, busy, error } = useAction();
  // a switch moves when clicked, and back if the server refuses
  const [wanted, setWanted] = useState<Partial<Toggles>>({});
  const settings = { ...saved, ...wanted };
  async function toggle(change: Partial<Toggles>) {
    setWanted(change);
    await run(() => client.updateProfile(change));
    setWanted({});
  }

  return (
    <section className="settings-section" aria-labelledby="settings-privacy">
      <h3 id="settings-privacy">Privacy</h3>
      <Switch id="message-requests" label="Message requests" checked={settings.message_requests}
        disabled={busy} onChange={(on) => void toggle({ message_requests: on })}
        hint={settings.message_requests
          ? "On: chats from people you haven't accepted wait under Message requests, and they can't see when you're online."
          : "Off: anyone who has your number can message you directly."} />
      <Switch id="read-receipts" label="Read receipts" checked={settings.read_receipts}
        disabled={busy} onChange={(on) => void toggle({ read_receipts: on })}
        hint={settings.read_receipts
          ? "On: people see when you've read their messages, and you see when they've read yours."
          : "Off: nobody sees when you've read their messages, and you don't see when they've read yours."} />
      {error && <p role="alert" className="error">{error}</p>}
    </section>
  );
}

/** Desktop notifications, asked for only from this button (a click), and whether they show
 * who wrote and what: stored in this browser only. */
function Notifications({ notifier }: { notifier: Notifier }) {
  const [permission, setPermission] = useState<NotificationPermissionState>(notifier.permission);
  const [previews, setPreviews] = useState(notifier.previews);
  const [asking, setAsking] = useState(false);

  async function turnOn() {
    setAsking(true);
    try {
      setPermission(await notifier.requestPermission());
    } finally {
      setAsking(false);
    }
  }

  return (
    <section className="settings-section" aria-labelledby="settings-notifications">
      <h3 id="settings-notifications">Notifications</h3>
      {permission === "unsupported" ? (
        <p className="hint">This browser can't show notifications.</p>
      ) : permission === "granted" ? (
        <p className="hint" data-testid="notifications-state">
          On: a message that arrives while this tab is in the background shows a notification.
        </p>
      ) : permission === "denied" ? (
        <p className="hint" data-testid="notifications-state">
          Blocked by your browser: allow notifications for this site in its settings to turn them on.
        </p>
      ) : (
        <p>
          <button type="button" className="secondary" disabled={asking} onClick={() => void turnOn()}>
            Turn on notifications
          </button>
        </p>
      )}
      {permission !== "unsupported" && (
        <Switch id="notification-previews" label="Show message previews" checked={previews} disabled={false}
          onChange={(on) => {
            notifier.setPreviews(on);
            setPreviews(on);
          }}
          hint={previews
            ? "On: a notification shows who wrote and the start of the message."
            : "Off: a notification says only \"New message\", in this browser."} />
      )}
    </section>
  );
}

function BlockedPeople({ client, blocks }: { client: ChatClient; blocks: Block[] }) {
  return (
    <section className="settings-section" aria-labelledby="settings-blocked">
      <h3 id="settings-blocked">Blocked people</h3>
      {blocks.length === 0 ? (
        <p className="hint">You haven't blocked anyone.</p>
      ) : (
        <>
          <p className="hint">They can't message you or add you to groups, and you never see their messages.</p>
          <ul className="blocked-list" aria-label="Blocked people">
            {blocks.map((block) => <BlockedPerson key={block.user_id} client={client} block={block} />)}
          </ul>
        </>
      )}
    </section>
  );
}

function BlockedPerson({ client, block }: { client: ChatClient; block: Block }) {
  const { run, busy, error } = useAction();
  const name = memberName(block);
  return (
    <li data-testid="blocked-person">
      <span className="blocked-name">
        <strong>{name}</strong>
        {name !== block.phone && <span className="hint"> {block.phone}</span>}
        <span className="hint"> · blocked {DATE.format(block.blocked_at)}</span>
      </span>
      <button type="button" className="secondary" disabled={busy} aria-label={`Unblock ${name}`}
        onClick={() => void run(() => client.unblock(block.user_id))}>Unblock</button>
      {error && <p role="alert" className="error">{error}</p>}
    </li>
  );
}

/** "Download my data": the server's export, saved by the browser as a JSON file. */
function YourData({ client }: { client: ChatClient }) {
  const { run, busy, error } = useAction();
  const download = () => run(async () => saveJson(await client.exportData(), exportFileName(new Date())));
  return (
    <section className="settings-section" aria-labelledby="settings-data">
      <h3 id="settings-data">Your data</h3>
      <p className="hint" id="export-hint">
        A JSON file of everything the server stores about you: your profile and settings, your signed-in devices,
        your chats and who is in them, the messages you sent that haven't expired, and the people you blocked.
      </p>
      <p>
        <button type="button" className="secondary" disabled={busy} aria-describedby="export-hint"
          onClick={() => void download()}>{busy ? "Preparing your data…" : "Download my data"}</button>
      </p>
      {error && <p role="alert" className="error">{error}</p>}
    </section>
  );
}

function DangerZone({ client, phone }: { client: ChatClient; phone: string }) {
  return (
    <section className="settings-section danger-zone" aria-labelledby="settings-danger">
      <h3 id="settings-danger">Danger zone</h3>
      <DeleteAccount client={client} phone={phone} />
    </section>
  );
}

/** A labelled checkbox with a one-line explanation of what its state means. */
function Switch({ id, label, checked, disabled, hint, onChange }: {
  id: string; label: string; checked: boolean; disabled: boolean; hint: string;
  onChange: (on: boolean) => void;
}) {
  return (
    <>
      <label className="toggle">
        <input type="checkbox" checked={checked} disabled={disabled}
          aria-describedby={`${id}-hint`} onChange={(e) => onChange(e.target.checked)} />
        <span>{label}</span>
      </label>
      <p className="hint" id={`${id}-hint`}>{hint}</p>
    </>
  );
}
