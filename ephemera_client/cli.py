"""The `ephemera` command: one small async function per subcommand over the client library, one
dispatcher that turns each kind of failure into its exit code (exits.py)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ephemera_client import load, smoke
from ephemera_client.api import Api, CodeSource, command_codes, outbox_codes, prompted_codes
from ephemera_client.client import Client
from ephemera_client.errors import ApiError, ClientError, Unreachable
from ephemera_client.events import (
    Connected,
    ConversationChanged,
    MemberChanged,
    Message,
    SendFailed,
    Sent,
)
from ephemera_client.exits import INTERRUPTED, OK, SIGNED_OUT, USAGE, exit_code_of
from ephemera_client.formatting import (
    Directory,
    block_row,
    conversation_row,
    device_row,
    event_json,
    event_line,
    json_line,
    me_lines,
    member_row,
    message_line,
    parse_duration,
)
from ephemera_client.session import FileSession

DEFAULT_URL = "http://127.0.0.1:8000"
Command = Callable[[argparse.Namespace], Awaitable[int]]


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    """Parses, runs the subcommand, and says in one line on stderr what failed."""
    args = build_parser().parse_args(argv)
    try:
        args.url = resolve_url(args)
        return asyncio.run(args.run(args))
    except ClientError as error:
        print(f"ephemera: {describe(error)}", file=sys.stderr)
        return exit_code_of(error)
    except ValueError as error:  # a bad profile name
        print(f"ephemera: {error}", file=sys.stderr)
        return USAGE
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:  # `ephemera tail | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK


def describe(error: ClientError) -> str:
    if isinstance(error, ApiError):
        wait = f"; try again in {error.retry_after_s:.0f} s" if error.retry_after_s else ""
        return f"{error.message} ({error.code}{wait})"
    return str(error)


def resolve_url(args: argparse.Namespace) -> str:
    """`--url` or `EPHEMERA_URL`, else the server the profile signed in to, else the local one."""
    if args.url:
        return args.url
    credentials = FileSession.for_profile(args.profile).load()
    return credentials.url if credentials else DEFAULT_URL


# --- what every command opens ---------------------------------------------------------------


def store_of(args: argparse.Namespace) -> FileSession:
    return FileSession.for_profile(args.profile)


@contextlib.asynccontextmanager
async def opened_api(args: argparse.Namespace) -> AsyncIterator[Api]:
    api = Api(args.url, session=store_of(args))
    try:
        yield api
    finally:
        await api.close()


def client_of(args: argparse.Namespace, *, shows_messages: bool) -> Client:
    return Client(args.url, session=store_of(args), receive=shows_messages)


async def directory(api: Api) -> Directory:
    names = Directory(api.credentials().user_id)
    names.learn(await api.conversations())
    return names


def conversation_ref(ref: str, names: Directory) -> dict[str, Any]:
    """The conversation `ref` names: its id, a unique prefix of it, the phone or name of the
    other member of a 1:1, or a title (`#general` or `general`)."""
    listed = list(names.conversations.values())
    exact = [c for c in listed if c["id"] == ref]
    if exact:
        return exact[0]
    wanted = ref.removeprefix("#").casefold()
    found = [c for c in listed if c["id"].startswith(ref)
             or (c.get("title") or "").casefold() == wanted
             or (c.get("kind") == "direct" and _names_other(c, ref, names.own_user_id))]
    if len(found) == 1:
        return found[0]
    if not found:
        raise ApiError("not_found", f"no conversation of yours matches {ref!r} "
                       "(see `ephemera conversations`)")
    ids = ", ".join(c["id"] for c in found)
    raise ApiError("bad_request", f"{ref!r} could be any of {ids}: give more of the id")


def _names_other(conversation: dict[str, Any], ref: str, own_user_id: str) -> bool:
    return any(ref in (m.get("phone"), m.get("display_name"), m.get("user_id"))
               for m in conversation.get("members") or () if m["user_id"] != own_user_id)


def member_ref(ref: str, conversation: dict[str, Any]) -> str:
    """A member's user id from their user id, phone or display name."""
    for member in conversation.get("members") or ():
        if ref in (member["user_id"], member.get("phone"), member.get("display_name")):
            return member["user_id"]
    raise ApiError("not_found", f"no member {ref!r} in this conversation")


def user_ref(ref: str, names: Directory, blocks: list[dict[str, Any]] = ()) -> str:
    """A user's id: given as such, or the phone or name of someone you share a conversation
    with (or have blocked)."""
    people = [m for c in names.conversations.values() for m in c.get("members") or ()]
    for person in [*people, *blocks]:
        if ref in (person["user_id"], person.get("phone"), person.get("display_name")):
            return person["user_id"]
    if ref.startswith("+"):
        raise ApiError("not_found", f"you share no conversation with {ref}: give a user id")
    return ref


async def resolved(api: Api, ref: str) -> tuple[Directory, dict[str, Any]]:
    names = await directory(api)
    return names, conversation_ref(ref, names)


# --- signing in -----------------------------------------------------------------------------


async def login_command(args: argparse.Namespace) -> int:
    async with opened_api(args) as api:
        source: CodeSource = (command_codes(args.code_command) if args.code_command
                              else outbox_codes(api) if args.outbox else prompted_codes())
        credentials = await api.login(args.phone, source, args.device_name)
    print(f"signed in as {credentials.phone} (user {credentials.user_id}, "
          f"device {credentials.device_id})")
    return OK


async def logout_command(args: argparse.Namespace) -> int:
    async with opened_api(args) as api:
        await api.logout()
    print("signed out")
    return OK


async def whoami_command(args: argparse.Namespace) -> int:
    async with opened_api(args) as api:
        me = await api.me()
        credentials = api.credentials()
    if args.json:
        print(json_line({**me, "device_id": credentials.device_id, "url": credentials.url}))
    else:
        print("\n".join(me_lines(me, credentials.device_id, credentials.url)))
    return OK


async def me_command(args: argparse.Namespace) -> int:
    changes = {name: value for name, value in (
        ("display_name", args.name), ("message_requests", args.message_requests),
        ("read_receipts", args.read_receipts)) if value is not None}
    async with opened_api(args) as api:
        me = await (api.update_me(**changes) if changes else api.me())
        credentials = api.credentials()
    print(json_line(me) if args.json else "\n".join(me_lines(me, credentials.device_id,
                                                             credentials.url)))
    return OK


# --- conversations --------------------------------------------------------------------------


async def conversations_command(args: argparse.Namespace) -> int:
    async with opened_api(args) as api:
        names = await directory(api)
    for conversation in names.conversations.values():
        print(json_line(conversation) if args.json
              else conversation_row(conversation, names.own_user_id))
    return OK


async def new_command(args: argparse.Namespace) -> int:
    async with opened_api(args) as api:
        conversation = await api.create_conversation(args.phones, title=args.title,
                                                     ttl_seconds=args.ttl)
    print(conversation["id"])
    return OK


async def history_command(args: argparse.Namespace) -> int:
    """The newest `--limit` messages (or those before `--before`), oldest first."""
    async with opened_api(args) as api:
        names, conversation = await resolved(api, args.conversation)
        newest_first = int(conversation.get("last_seq") or 0) + 1  # the newest page, not the oldest
        page = await api.history(conversation["id"], before_seq=args.before or newest_first,
                                 limit=args.limit)
    for message in page["messages"]:
        print(json_line(message) if args.json else message_line(message, names, with_seq=True))
    if page.get("has_more") and page["messages"] and not args.json:
        print(f"(older messages remain: --before {page['messages'][0]['seq']})", file=sys.stderr)
    return OK


async def change_conversation(args: argparse.Namespace, **changes: Any) -> int:
    async with opened_api(args) as api:
        names, conversation = await resolved(api, args.conversation)
        changed = await api.update_conversation(conversation["id"], **changes)
    print(conversation_row(changed, names.own_user_id))
    return OK


async def rename_command(args: argparse.Namespace) -> int:
    return await change_conversation(args, title=args.title)


async def ttl_command(args: argparse.Namespace) -> int:
    return await change_conversation(args, ttl_seconds=args.seconds)


async def accept_command(args: argparse.Namespace) -> int:
    async with opened_api(args) as api:
        _, conversation = await resolved(api, args.conversation)
        await api.accept(conversation["id"])
    print(f"accepted {conversation['id']}")
    return OK


async def decline_command(args: argparse.Namespace) -> int:
    async with opened_api(args) as api:
        _, conversation = await resolved(api, args.conversation)
        await api.decline(conversation["id"], block=args.block)
    print(f"declined {conversation['id']}" + (" and blocked its starter" if args.block else ""))
    return OK


async def leave_command(args: argparse.Namespace) -> int:
    async with opened_api(args) as api:
        names, conversation = await resolved(api, args.conversation)
        await api.remove_member(conversation["id"], names.own_user_id)
    print(f"left {conversation['id']}")
    return OK


# --- members --------------------------------------------------------------------------------


async def members_list_command(args: argparse.Namespace) -> int:
    async with opened_api(args) as api:
        _, conversation = await resolved(api, args.conversation)
    for member in conversation.get("members") or ():
        print(json_line(member) if args.json else member_row(member))
    return OK


async def members_add_command(args: argparse.Namespace) -> int:
    async with opened_api(args) as api:
        _, conversation = await resolved(api, args.conversation)
        changed = await api.add_members(conversation["id"], args.phones)
    for member in changed.get("members") or ():
        print(member_row(member))
    return OK


async def members_remove_command(args: argparse.Namespace) -> int:
    async with opened_api(args) as api:
        _, conversation = await resolved(api, args.conversation)
        await api.remove_member(conversation["id"], member_ref(args.member, conversation))
    print(f"removed {args.member}")
    return OK


async def members_role_command(args: argparse.Namespace) -> int:
    async with opened_api(args) as api:
        _, conversation = await resolved(api, args.conversation)
        member = await api.set_role(conversation["id"], member_ref(args.member, conversation),
                                    args.role)
    print(member_row(member) if member and "user_id" in member else f"{args.member} is now "
          f"{args.role}")
    return OK


# --- messages -------------------------------------------------------------------------------


async def send_command(args: argparse.Namespace) -> int:
    """Each argument-joined text, or each line of stdin, is one message, sent in order."""
    if args.text:
        bodies = [" ".join(args.text)]
    else:
        bodies = [line for line in (await asyncio.to_thread(sys.stdin.read)).splitlines()
                  if line.strip()]
    if not bodies:
        print("ephemera: nothing to send (give the text, or lines on stdin)", file=sys.stderr)
        return USAGE
    async with client_of(args, shows_messages=False) as client:
        _, conversation = await resolved(client.api, args.conversation)
        ids = [client.send(conversation["id"], body).client_msg_id for body in bodies]
        await client.connect()
        try:
            return await asyncio.wait_for(_report_sends(client, ids, args.quiet), args.timeout)
        except TimeoutError:
            raise Unreachable(f"not every message was confirmed within {args.timeout:.0f} s "
                              "(the rest may not have been stored)") from None


async def _report_sends(client: Client, ids: list[str], quiet: bool) -> int:
    waiting, failure = set(ids), OK
    async for event in client.events():
        if not isinstance(event, Sent | SendFailed) or event.client_msg_id not in waiting:
            continue
        waiting.discard(event.client_msg_id)
        if isinstance(event, Sent) and not quiet:
            print(f"sent seq={event.seq}", flush=True)
        elif isinstance(event, SendFailed):
            print(f"ephemera: not sent: {event.message} ({event.code})", file=sys.stderr)
            failure = failure or exit_code_of(ApiError(event.code, event.message))
        if not waiting:
            break
    return failure


async def unsend_command(args: argparse.Namespace) -> int:
    async with client_of(args, shows_messages=False) as client:
        _, conversation = await resolved(client.api, args.conversation)
        await client.connect()
        await client.unsend(conversation["id"], args.seq)
    print(f"unsent seq={args.seq}")
    return OK


async def tail_command(args: argparse.Namespace) -> int:
    """Shows every event until Ctrl-C or SIGTERM (exit 0) or the session ends (exit 3)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for stopping in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(stopping, stop.set)
    try:
        async with client_of(args, shows_messages=True) as client:
            shown = asyncio.create_task(_show_events(client, args))
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({shown, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not shown.done():
                shown.cancel()
                return OK
            return shown.result()
    finally:
        for stopping in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(stopping)


async def _show_events(client: Client, args: argparse.Namespace) -> int:
    names = await directory(client.api)
    wanted = conversation_ref(args.conversation, names)["id"] if args.conversation else None
    await client.connect()
    caught_up = not args.since_now
    async for event in client.events():
        if isinstance(event, ConversationChanged):
            names.learn_one(event.conversation)
        elif isinstance(event, MemberChanged | Message) and \
                getattr(event, "conversation_id", "") not in names.conversations:
            names.learn(await client.api.conversations())
        caught_up = caught_up or isinstance(event, Connected)
        conversation_id = getattr(event, "conversation_id", None) or \
            (event.conversation.get("id") if isinstance(event, ConversationChanged) else None)
        if not caught_up or (wanted and conversation_id not in (None, wanted)):
            continue
        line = json_line(event_json(event)) if args.json else event_line(event, names)
        if line is not None:
            print(line, flush=True)
        if isinstance(event, Message) and not args.no_read:
            client.read(event.conversation_id, event.seq)
    return SIGNED_OUT  # events() ends only when closed, which the caller does


# --- devices, blocks and the account -------------------------------------------------------


async def devices_command(args: argparse.Namespace) -> int:
    async with opened_api(args) as api:
        devices = await api.devices()
    for device in devices:
        print(json_line(device) if args.json else device_row(device))
    return OK


async def devices_revoke_command(args: argparse.Namespace) -> int:
    async with opened_api(args) as api:
        own = api.credentials().device_id
        await api.revoke_device(args.device)
        if args.device == own:
            api.session.save(None)
    print(f"revoked {args.device}" + (" (this device: signed out)" if args.device == own else ""))
    return OK


async def blocks_command(args: argparse.Namespace) -> int:
    async with opened_api(args) as api:
        blocks = await api.blocks()
    for block in blocks:
        print(json_line(block) if args.json else block_row(block))
    return OK


async def block_command(args: argparse.Namespace) -> int:
    async with opened_api(args) as api:
        user_id = user_ref(args.user, await directory(api))
        await api.block(user_id)
    print(f"blocked {user_id}")
    return OK


async def unblock_command(args: argparse.Namespace) -> int:
    async with opened_api(args) as api:
        user_id = user_ref(args.user, await directory(api), await api.blocks())
        await api.unblock(user_id)
    print(f"unblocked {user_id}")
    return OK


async def export_command(args: argparse.Namespace) -> int:
    async with opened_api(args) as api:
        everything = json.dumps(await api.export(), ensure_ascii=False, indent=2) + "\n"
    if args.output in (None, "-"):
        sys.stdout.write(everything)
    else:  # what is stored about you: readable by you only
        with os.fdopen(os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                       "w") as file:
            file.write(everything)
    return OK


async def delete_account_command(args: argparse.Namespace) -> int:
    async with opened_api(args) as api:
        phone = api.credentials().phone
        if not args.yes:
            if not sys.stdin.isatty():
                print("ephemera: deleting an account needs --yes when not at a terminal",
                      file=sys.stderr)
                return USAGE
            typed = await asyncio.to_thread(input, f"Type {phone} to delete it for good: ")
            if typed.strip() != phone:
                print("ephemera: not deleted", file=sys.stderr)
                return USAGE
        source = (command_codes(args.code_command) if args.code_command
                  else outbox_codes(api) if args.outbox else prompted_codes())
        await api.delete_account(source)
    print(f"deleted the account of {phone}")
    return OK


# --- the parser -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ephemera", description="Ephemera from the command line.",
        epilog="exit codes: 0 ok, 1 failed, 2 usage, 3 signed out, 4 refused, "
               "5 unreachable, 6 rate limited, 7 server error, 130 interrupted")
    _global_flags(parser, url=os.environ.get("EPHEMERA_URL"),
                  profile=os.environ.get("EPHEMERA_PROFILE", "default"))
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True,
                                     parser_class=_CommandParser)
    for add in (_account_commands, _conversation_commands, _message_commands,
                _safety_commands):
        add(commands)
    smoke.register(commands)
    load.register(commands)
    return parser


def _global_flags(parser: argparse.ArgumentParser, *, url: Any, profile: Any) -> None:
    parser.add_argument("--url", default=url,
                        help="the server (env EPHEMERA_URL; default: the profile's, else "
                             f"{DEFAULT_URL})")
    parser.add_argument("--profile", default=profile,
                        help="which signed-in account (env EPHEMERA_PROFILE; default: default)")


class _CommandParser(argparse.ArgumentParser):
    """A command's parser, which also takes the global flags after the command's name
    (`ephemera smoke --url URL`, as operators write it). Their defaults are suppressed here, so
    a flag given before the name is not overwritten by a command that does not repeat it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _global_flags(self, url=argparse.SUPPRESS, profile=argparse.SUPPRESS)


def _command(commands: argparse._SubParsersAction, name: str, run: Command, help_text: str,
             *, json_flag: bool = False) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(run=run)
    if json_flag:
        parser.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


def _code_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--code-command", metavar="CMD",
                        help="a shell command that prints the texted code (phone appended)")
    parser.add_argument("--outbox", action="store_true",
                        help="read the code from the local stack's /dev/outbox")


def _account_commands(commands: argparse._SubParsersAction) -> None:
    login = _command(commands, "login", login_command, "sign in with a code texted to PHONE")
    login.add_argument("phone")
    _code_flags(login)
    login.add_argument("--device-name", default=f"ephemera-cli on {socket.gethostname()}")
    _command(commands, "logout", logout_command, "sign out this device")
    _command(commands, "whoami", whoami_command, "who this profile is signed in as",
             json_flag=True)
    me = _command(commands, "me", me_command, "show or change your name and settings",
                  json_flag=True)
    me.add_argument("--name", help="your display name")
    me.add_argument("--message-requests", type=_on_off, metavar="on|off")
    me.add_argument("--read-receipts", type=_on_off, metavar="on|off")
    devices = _command(commands, "devices", devices_command, "your devices (* is this one)",
                       json_flag=True)
    revoke = devices.add_subparsers(metavar="ACTION").add_parser(
        "revoke", help="sign a device out")
    revoke.add_argument("device")
    revoke.set_defaults(run=devices_revoke_command)
    export = _command(commands, "export", export_command, "everything stored about you, as JSON")
    export.add_argument("--output", "-o", help="a file (mode 0600) instead of stdout")
    delete = _command(commands, "delete-account", delete_account_command,
                      "delete your account and everything of it, for good")
    _code_flags(delete)
    delete.add_argument("--yes", action="store_true", help="do not ask to confirm")


def _conversation_commands(commands: argparse._SubParsersAction) -> None:
    _command(commands, "conversations", conversations_command, "your conversations",
             json_flag=True)
    new = _command(commands, "new", new_command,
                   "start a conversation (1:1 with one phone, a group with more)")
    new.add_argument("phones", nargs="+", metavar="PHONE")
    new.add_argument("--title")
    new.add_argument("--ttl", type=_duration, help="message lifetime (seconds, or 10m, 1h, 7d)")
    rename = _command(commands, "rename", rename_command, "change a conversation's title")
    rename.add_argument("conversation")
    rename.add_argument("title")
    ttl = _command(commands, "ttl", ttl_command, "change how long new messages live")
    ttl.add_argument("conversation")
    ttl.add_argument("seconds", type=_duration, metavar="TTL")
    for name, run, help_text in (("accept", accept_command, "accept a message request"),
                                 ("leave", leave_command, "leave a conversation")):
        _command(commands, name, run, help_text).add_argument("conversation")
    decline = _command(commands, "decline", decline_command, "decline a message request")
    decline.add_argument("conversation")
    decline.add_argument("--block", action="store_true", help="and block whoever started it")
    members = commands.add_parser("members", help="a group's members")
    actions = members.add_subparsers(metavar="ACTION", required=True)
    listing = _command(actions, "list", members_list_command, "list the members",
                       json_flag=True)
    listing.add_argument("conversation")
    add = _command(actions, "add", members_add_command, "add people by phone")
    add.add_argument("conversation")
    add.add_argument("phones", nargs="+", metavar="PHONE")
    remove = _command(actions, "remove", members_remove_command, "remove a member")
    role = _command(actions, "role", members_role_command, "make a member admin or member")
    for parser in (remove, role):
        parser.add_argument("conversation")
        parser.add_argument("member", help="user id, phone or display name")
    role.add_argument("role", choices=("admin", "member"))


def _message_commands(commands: argparse._SubParsersAction) -> None:
    send = _command(commands, "send", send_command,
                    "send TEXT, or each line of stdin as one message, in order")
    send.add_argument("conversation", help="id, id prefix, title, or the other's phone")
    send.add_argument("text", nargs="*")
    send.add_argument("--quiet", "-q", action="store_true", help="print nothing when sent")
    send.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    tail = _command(commands, "tail", tail_command,
                    "show messages, receipts, presence and expiry as they happen",
                    json_flag=True)
    tail.add_argument("conversation", nargs="?", help="only this one")
    tail.add_argument("--no-read", action="store_true", help="do not mark messages read")
    tail.add_argument("--since-now", action="store_true", help="skip what came before")
    history = _command(commands, "history", history_command, "a conversation's messages",
                       json_flag=True)
    history.add_argument("conversation")
    history.add_argument("--limit", type=int, default=50)
    history.add_argument("--before", type=int, metavar="SEQ")
    unsend = _command(commands, "unsend", unsend_command, "take back one of your messages")
    unsend.add_argument("conversation")
    unsend.add_argument("seq", type=int)


def _safety_commands(commands: argparse._SubParsersAction) -> None:
    _command(commands, "blocks", blocks_command, "who you have blocked", json_flag=True)
    for name, run in (("block", block_command), ("unblock", unblock_command)):
        _command(commands, name, run, f"{name} someone").add_argument(
            "user", help="user id, or the phone or name of someone you share a conversation with")


def _duration(text: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _on_off(text: str) -> bool:
    if text.lower() in ("on", "true", "yes", "1"):
        return True
    if text.lower() in ("off", "false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError("on or off")
