// A group's members: who they are, their role, who is online; and what my role lets me do
// (add people, remove them, make them admins), and leaving. On a phone it covers the chat like
// a pane of its own; beside the list it is a panel on the chat's right.

import { type FormEvent, type KeyboardEvent, useEffect, useRef, useState } from "react";
import { ApiError } from "../api";
import type { ChatClient } from "../client";
import { defaultRegion, listToE164 } from "../phone";
import type { Member } from "../protocol";
import { type ChatState, type ConversationState, memberName, noticeText, noticesOf } from "../store";
import { explain } from "./explain";
import { useAction } from "./useAction";
import "./members.css";

interface Props {
  client: ChatClient;
  state: ChatState;
  conversation: ConversationState;
  onClose: () => void;
  /** I left the group: it is gone from my list; what to tell me. */
  onLeft: (notice: string) => void;
}

const ROLE_WORDS: Record<string, string> = { owner: "Owner", admin: "Admin" };
const RANK: Record<string, number> = { owner: 0, admin: 1, member: 2 };

export function MembersPanel({ client, state, conversation, onClose, onLeft }: Props) {
  const mine = conversation.members.find((m) => m.user_id === state.me)?.role ?? "member";
  const canAdd = mine === "owner" || mine === "admin";
  const members = [...conversation.members].sort((a, b) =>
    (RANK[a.role ?? "member"] ?? 2) - (RANK[b.role ?? "member"] ?? 2) || memberName(a).localeCompare(memberName(b)));
  const changes = noticesOf(state, conversation).slice(-10).reverse();
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), []); // a screen reader (and the keyboard) starts here
  const closeOnEscape = (event: KeyboardEvent) => {
    if (event.key === "Escape") onClose();
  };

  return (
    <aside className="members-panel" aria-label="Group members" data-testid="members-panel" onKeyDown={closeOnEscape}>
      <header className="members-panel-header">
        <h2 ref={heading} tabIndex={-1}>Members <span className="members-count">({conversation.members.length})</span></h2>
        <button type="button" className="secondary" onClick={onClose}>Close</button>
      </header>
      <div className="members-panel-body">
        {canAdd && <GroupName client={client} conversation={conversation} />}
        {canAdd && <AddPeople client={client} conversation={conversation} />}
        <ul className="member-rows" aria-label="Members">
          {members.map((m) => (
            <MemberRow key={m.user_id} client={client} state={state} conversation={conversation} member={m} myRole={mine} />
          ))}
        </ul>
        <LeaveGroup client={client} conversation={conversation} onLeft={onLeft} />
        {changes.length > 0 && (
          <section className="member-changes" aria-label="Recent changes">
            <h3>Recent changes</h3>
            <ul>
              {changes.map((n, index) => (
                <li key={`${n.at} ${index}`}>{noticeText(state, conversation, n)}</li>
              ))}
            </ul>
          </section>
        )}
      </div>
    </aside>
  );
}

function MemberRow({ client, state, conversation, member, myRole }: {
  client: ChatClient;
  state: ChatState;
  conversation: ConversationState;
  member: Member;
  myRole: string;
}) {
  const { run, busy, error } = useAction();
  const me = member.user_id === state.me;
  const name = memberName(member);
  const role = member.role ?? "member";
  const owner = myRole === "owner";
  const canRemove = !me && (owner || (myRole === "admin" && role === "member"));
  const canPromote = owner && !me && role !== "owner";
  const id = conversation.id;
  return (
    <li className="member-row" data-testid="member" data-user-id={member.user_id}>
      <div className="member-who">
        <span className="member-name" data-testid="member-name">{me ? `${name} (you)` : name}</span>
        {member.display_name?.trim() && <span className="member-phone">{member.phone}</span>}
        <span className="member-status">
          {ROLE_WORDS[role] && <span className="member-role" data-testid="member-role">{ROLE_WORDS[role]}</span>}
          {!me && member.online && <span className="member-online">online</span>}
        </span>
      </div>
      {!me && (
        <div className="member-actions">
          {canPromote && (
            <button type="button" className="secondary" disabled={busy}
              onClick={() => void run(() => client.setMemberRole(id, member.user_id, role === "admin" ? "member" : "admin"))}>
              {role === "admin" ? "Make member" : "Make admin"}
            </button>
          )}
          {canRemove && (
            <button type="button" className="danger" disabled={busy} aria-label={`Remove ${name}`}
              onClick={() => void run(() => client.removeMember(id, member.user_id))}>
              Remove
            </button>
          )}
          <BlockToggle client={client} person={member} blocked={member.user_id in state.blocked} />
        </div>
      )}
      {error && <p role="alert" className="error">{error}</p>}
    </li>
  );
}

/** Owner and admins name the group; everyone sees "Alice renamed the group to X". */
function GroupName({ client, conversation }: { client: ChatClient; conversation: ConversationState }) {
  const [title, setTitle] = useState(conversation.title ?? "");
  const { run, busy, error } = useAction();
  const changed = title.trim() !== (conversation.title ?? "");
  return (
    <form className="add-people" aria-label="Group name"
      onSubmit={(event) => {
        event.preventDefault();
        void run(() => client.updateConversation(conversation.id, { title: title.trim() }));
      }}>
      <label>
        Group name
        <input value={title} onChange={(e) => setTitle(e.target.value)} maxLength={200} autoComplete="off" />
      </label>
      <button type="submit" disabled={busy || !changed}>Rename</button>
      {error && <p role="alert" className="error">{error}</p>}
    </form>
  );
}

/** "+1 415 555 0101, +44 20 7946 0018": each becomes a member (or a pending one, without an account). */
function AddPeople({ client, conversation }: { client: ChatClient; conversation: ConversationState }) {
  const [phones, setPhones] = useState("");
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const parsed = listToE164(phones, defaultRegion());
    if ("problem" in parsed) {
      setProblem(parsed.problem);
      return;
    }
    setProblem(null);
    setBusy(true);
    try {
      await client.addMembers(conversation.id, parsed.phones);
      setPhones("");
    } catch (caught) {
      setProblem(addProblem(caught));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="add-people" onSubmit={submit} aria-label="Add people">
      <label>
        Add people
        <input value={phones} onChange={(e) => setPhones(e.target.value)} placeholder="+1 415 555 0101, ..."
          autoComplete="off" inputMode="tel" required />
      </label>
      <button type="submit" disabled={busy || !phones.trim()}>Add</button>
      {problem && <p role="alert" className="error">{problem}</p>}
    </form>
  );
}

/** Why people could not be added: as for a new chat, but someone who blocked me is "can't add". */
function addProblem(error: unknown): string {
  if (error instanceof ApiError && error.code === "forbidden") return "You can't add one of these people.";
  return explain(error, "start-chat");
}

/** Leaving asks once more: the group's history is gone for me afterwards. */
function LeaveGroup({ client, conversation, onLeft }: {
  client: ChatClient;
  conversation: ConversationState;
  onLeft: (notice: string) => void;
}) {
  const [asking, setAsking] = useState(false);
  const { run, busy, error } = useAction();
  const name = conversation.title ?? "this group";
  if (!asking) {
    return (
      <div className="leave-group">
        <button type="button" className="danger" onClick={() => setAsking(true)}>Leave group</button>
      </div>
    );
  }
  return (
    <div className="leave-group" role="group" aria-label="Leave the group?">
      <p>Leave {name}? You will no longer see its messages.</p>
      <div className="leave-buttons">
        <button type="button" className="danger" disabled={busy}
          onClick={() => void run(() => client.leaveGroup(conversation.id)).then((left) => {
            if (left) onLeft(`You left ${name}.`);
          })}>
          Leave
        </button>
        <button type="button" className="secondary" disabled={busy} onClick={() => setAsking(false)}>Cancel</button>
      </div>
      {error && <p role="alert" className="error">{error}</p>}
    </div>
  );
}

/** Block or unblock one person (their messages stop showing at once). */
export function BlockToggle({ client, person, blocked }: { client: ChatClient; person: Member; blocked: boolean }) {
  const { run, busy, error } = useAction();
  const name = memberName(person);
  return (
    <span className="block-toggle">
      <button type="button" className={blocked ? "secondary" : "danger"} disabled={busy}
        aria-label={`${blocked ? "Unblock" : "Block"} ${name}`}
        onClick={() => void run(() => (blocked ? client.unblock(person.user_id) : client.block(person.user_id)))}>
        {blocked ? "Unblock" : "Block"}
      </button>
      {error && <span role="alert" className="error">{error}</span>}
    </span>
  );
}
