"""The capacity model: what a number of daily users asks of API Gateway, Lambda, the database
and SQS, at average and at peak; what that costs a month; and which quota or component it hits
first.

Pure arithmetic on named inputs: the workload (`Workload`, every default an assumption), the
design's knobs (`Design`, as the code is built), the deployment's sizes (`Deployment`) and
published prices (`Prices`). Every constant says where it comes from: an AWS documentation or
pricing page, `bench/RESULTS.md` (measured on this 2-core machine), the code, or "assumption".
No dependency beyond the standard library (`--measure-rows` alone needs the dev tools and a
MariaDB server).

    python -m bench.capacity                  # tables and one JSON line per table
    python -m bench.capacity --write-doc      # rewrite the tables in docs/SCALING.md
    python -m bench.capacity --check-doc      # exit 1 when docs/SCALING.md is stale
    python -m bench.capacity --measure-rows   # bytes per stored row on the local MariaDB

The tables in docs/SCALING.md sit between `<!-- capacity-table:begin -->` and
`<!-- capacity-table:end -->`; tests/unit/test_capacity.py fails when they differ from what
this module renders.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from bench.report import emit

DAY_S = 86_400
MONTH_H = 730  # hours in a month, as AWS pricing pages and docs/COSTS.md count
MONTH_S = MONTH_H * 3600
GIB = 1024**3
GB = 10**9
SCALES = (10_000, 100_000, 1_000_000, 10_000_000)  # daily users, one table row each

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "SCALING.md"
BEGIN_MARKER = "<!-- capacity-table:begin -->"
END_MARKER = "<!-- capacity-table:end -->"

# --- sources ----------------------------------------------------------------------------------

WEBSOCKET_QUOTAS_URL = ("https://docs.aws.amazon.com/apigateway/latest/developerguide/"
                        "apigateway-execution-service-websocket-limits-table.html")
APIGW_QUOTAS_URL = "https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html"
LAMBDA_QUOTAS_URL = "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html"
LAMBDA_SCALING_URL = "https://docs.aws.amazon.com/lambda/latest/dg/scaling-behavior.html"
RDS_MAX_CONNECTIONS_URL = ("https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/"
                           "CHAP_Limits.html#RDS_Limits.MaxConnections")
AURORA_MAX_CONNECTIONS_URL = ("https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/"
                              "AuroraMySQL.Managing.Performance.html")
PROXY_SETTINGS_URL = ("https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/"
                      "rds-proxy-connections.html")
RDS_STORAGE_URL = ("https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/"
                   "CHAP_Storage.html")
RESULTS = "bench/RESULTS.md"

APIGW_PRICING_URL = "https://aws.amazon.com/api-gateway/pricing/"
LAMBDA_PRICING_URL = "https://aws.amazon.com/lambda/pricing/"
SQS_PRICING_URL = "https://aws.amazon.com/sqs/pricing/"
RDS_MYSQL_PRICING_URL = "https://aws.amazon.com/rds/mysql/pricing/"
RDS_PROXY_PRICING_URL = "https://aws.amazon.com/rds/proxy/pricing/"
VPC_PRICING_URL = "https://aws.amazon.com/vpc/pricing/"
CLOUDWATCH_PRICING_URL = "https://aws.amazon.com/cloudwatch/pricing/"
PRICE_PAGES = (APIGW_PRICING_URL, LAMBDA_PRICING_URL, SQS_PRICING_URL, RDS_MYSQL_PRICING_URL,
               RDS_PROXY_PRICING_URL, VPC_PRICING_URL, CLOUDWATCH_PRICING_URL)
# Cited in docs/SCALING.md next to the quotas the model checks, not checked by it.
OTHER_SOURCES = (LAMBDA_SCALING_URL, AURORA_MAX_CONNECTIONS_URL)
PRICES_READ = ("us-east-1, on-demand, as written down on 2026-12-01 from docs/COSTS.md and the "
               "pricing pages cited; the live pages could not be opened from this session, so "
               "check them before relying on a figure")

# --- measured on this machine (bench/RESULTS.md) and read from the code ------------------------

# MariaDB's own CPU per message was 2.56 ms at 200 msg/s (quiet machine, 15:00 run), when a
# message was two write transactions (the send, and the receiver's ack of every message):
# about 1.3 ms of server CPU per write transaction, so one core commits about 770 a second.
# MariaDB 10.11 on this x86 machine, loopback, not MySQL 8.4 on Graviton: an indication only.
WRITER_CPU_MS_PER_TRANSACTION = 1.3
# The handlers' CPU per message (send + ack, pushes included) measured as Lambda bills it:
# 4.50-5.39 ms, so about 2.5 ms an invocation. Billed time in AWS adds the network round trips
# (database through RDS Proxy, pushes through NAT) this machine's loopback does not have:
# assumption, 30 ms billed per invocation, six times the measured CPU.
MEASURED_HANDLER_CPU_MS_PER_MESSAGE = (4.50, 5.39)
BILLED_MS_PER_INVOCATION = 30.0
# Assumption: one @connections POST from a Lambda in the VPC through NAT, on a kept-alive
# connection, takes 10 ms of wall time (DESIGN.md measured 1.0 ms on loopback). Pushes go out
# PUSH_CONCURRENCY at a time (chalicelib/services/delivery.py), so each adds 10/8 ms.
PUSH_WALL_MS = 10.0
PUSH_CONCURRENCY = 8  # chalicelib/services/delivery.py PUSH_CONCURRENCY
# Assumption: a write transaction holds a database connection (borrowed from RDS Proxy's pool)
# for 5 ms: at most 5 round trips per send (DESIGN.md "Send path cost") of about 1 ms in a VPC.
TRANSACTION_HOLD_MS = 5.0
IDEMPOTENCY_WINDOW_S = 24 * 3600  # chalicelib/services/messaging.py IDEMPOTENCY_WINDOW_MS
# Bytes per stored row, table data plus every index, on InnoDB: measured with
# `python -m bench.capacity --measure-rows` on this machine's MariaDB 10.11 (2026-12-01),
# 200,000 rows a table, 100-byte message bodies. The permanent rows of a registered user
# (user, devices, memberships) are an assumption: ~2 KB.
MESSAGE_ROW_BYTES = 611
IDEMPOTENCY_KEY_ROW_BYTES = 604
CONNECTION_ROW_BYTES = 579
REGISTERED_USER_BYTES = 2_048
# Each WebSocket message is billed per 32 KB; a body is at most 16 KB (messaging.py), so every
# frame and push is one billed message.
# A connection opens with POST /ws/ticket (code: auth.issue_ticket, one rate-limit write) and,
# assumption, one GET /conversations; then `sync` (docs/client.md: after every connect).
REST_REQUESTS_PER_CONNECT = 2
# The scheduled job deletes expired messages 2,000 to a transaction and ended idempotency keys
# 1,000 to one (chalicelib/services/expiry.py DEFAULT_BATCH_SIZE, HOUSEKEEPING_BATCH).
EXPIRY_BATCH = 2_000
HOUSEKEEPING_BATCH = 1_000
# Assumption: the expiry job's `expired` frame covers about 4 messages of one conversation
# (messages come in bursts that expire in the same minute's run).
EXPIRED_MESSAGES_PER_FRAME = 4.0
# Assumption: one log line of the app (~300 B, one per invocation) plus Lambda's START, END and
# REPORT lines (~300 B) per invocation, to CloudWatch Logs.
LOG_BYTES_PER_INVOCATION = 600
NAT_BYTES_PER_CALL = 2_048  # docs/COSTS.md: a push with SigV4 headers and its reply, ~2 KB


# --- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """Who uses the service and how. Every default is an assumption, named so it can be
    changed: none of them was measured on real users."""

    daily_users: int
    messages_per_user_per_day: float = 50.0
    devices_per_user: float = 1.5
    # Share of the messages sent to conversations of n members (1:1 is n = 2).
    group_mix: tuple[tuple[int, float], ...] = ((2, 0.70), (5, 0.20), (50, 0.08), (500, 0.02))
    peak_to_average: float = 3.0  # the busiest hour's rates over the day's average
    ttl_s: int = 86_400  # PROTOCOL's default conversation TTL
    online_hours_per_device: float = 3.0  # hours a device holds a socket per day
    sessions_per_device: float = 6.0  # times a device opens the app per day
    # `read` frames per receiving user with a device online, per message (acks are one per
    # receiving connection: the client acks what arrives, at most once a second per
    # conversation, docs/client.md).
    reads_per_receiving_user: float = 0.5
    # People whose presence frames reach a user: 1:1 partners and members of groups of at most
    # PRESENCE_PUSH_MAX_MEMBERS (50) members (chalicelib/services/presence.py).
    presence_contacts: float = 20.0
    registered_per_daily_user: float = 3.0
    ping_interval_s: float = 60.0  # docs/client.md: Timing.ping_every_s
    # Share of a device's online time in which it shows a group of more than 50 members: the
    # web client then re-reads GET /conversations every 30 s (web/src/client.ts
    # PRESENCE_REFRESH_MS), the only way such a group's presence and cursors reach it.
    # Assumption (with the mix above, 65 % of the messages a user receives come from groups of
    # 500, but a screen shows a conversation only part of the time a socket is open).
    big_group_shown_share: float = 0.25
    list_refresh_s: float = 30.0  # web/src/client.ts PRESENCE_REFRESH_MS

    def __post_init__(self) -> None:
        if abs(sum(share for _, share in self.group_mix) - 1.0) > 1e-9:
            raise ValueError("group_mix shares must add up to 1")


@dataclass(frozen=True)
class Design:
    """The code's knobs as built after issue 24 (and the alternatives docs/SCALING.md weighs)."""

    fanout_async_above: int = 50  # FANOUT_ASYNC_ABOVE: target connections
    connections_per_fanout_message: int = 200  # per SQS message (BRIEF / fanout.py)
    fanout_messages_per_call: int = 10  # SendMessageBatch's maximum
    # A member's ack or read pushes a receipt to the other members' connections only in a
    # conversation of at most this many members (PRESENCE_PUSH_MAX_MEMBERS: messaging._move_txn
    # and conversations.receipt_listeners_later); above it, to nobody (members read cursors
    # from GET /conversations). None: to every member in every conversation (before issue 24).
    receipts_max_members: int | None = 50
    # Where receipts go in the conversations that get them: "members", every other member's
    # connections (as built); "sender", only the sender of the messages they cover (not built).
    receipts_to: Literal["members", "sender"] = "members"
    # Clients ack what arrives in every conversation (docs/client.md); None = no cap.
    ack_max_members: int | None = None


def rds_mysql_max_connections(memory_gib: float) -> int:
    """RDS for MySQL's default max_connections, {DBInstanceClassMemory/12582880}, taken on the
    class's whole memory: an upper bound (RDS keeps some memory for itself)."""
    return int(memory_gib * GIB // 12_582_880)


def writer_transactions_per_s(vcpus: int) -> float:
    """Write transactions a writer commits a second, at this machine's measured CPU cost each
    (WRITER_CPU_MS_PER_TRANSACTION): an indication, not a benchmark of RDS."""
    return vcpus * 1000.0 / WRITER_CPU_MS_PER_TRANSACTION


@dataclass(frozen=True)
class Deployment:
    """The reference deployment the quotas are checked against: infra/stack.yaml (RDS for MySQL
    8.4 behind RDS Proxy, Multi-AZ in prod, 20 GiB gp3) with the writer at db.r6g.large (2 vCPU,
    16 GiB) instead of prod's burstable db.t4g.medium, Lambda at 1024 MB as prod has it, and
    the account's default quotas."""

    writer_class: str = "db.r6g.large"
    writer_vcpus: int = 2
    writer_max_connections: int = rds_mysql_max_connections(16.0)
    writer_transactions_per_s: float = writer_transactions_per_s(2)
    multi_az: bool = True
    storage_gib: float = 20.0  # infra/stack.yaml DatabaseStorageGiB default (no autoscaling)
    lambda_memory_gb: float = 1.0  # docs/COSTS.md: prod Lambda 1024 MB
    proxy_max_connections_percent: float = 100.0  # MaxConnectionsPercent default
    new_connections_per_s: float = 500.0  # API Gateway default quota
    account_requests_per_s: float = 10_000.0  # API Gateway default account throttle
    lambda_concurrency: float = 1_000.0  # Lambda default concurrent executions


@dataclass(frozen=True)
class Prices:
    """Published on-demand prices, us-east-1 (PRICES_READ says when and how they were read)."""

    websocket_message_tiers: tuple[tuple[float, float], ...] = ((1e9, 1.00), (math.inf, 0.80))
    connection_minute_per_million: float = 0.25
    rest_request_tiers: tuple[tuple[float, float], ...] = (
        (333e6, 3.50), (667e6, 2.80), (19e9, 2.38), (math.inf, 1.51))
    lambda_request_per_million: float = 0.20
    lambda_gb_second: float = 0.0000166667  # x86_64 (Chalice's default architecture)
    sqs_request_per_million: float = 0.40  # standard queue, each 64 KB chunk a request
    writer_hourly: float = 0.240  # db.r6g.large RDS for MySQL Single-AZ (Multi-AZ: twice)
    gp3_gb_month: float = 0.115  # Single-AZ; Multi-AZ twice (docs/COSTS.md)
    proxy_vcpu_hour: float = 0.015  # of the instance's vCPUs, minimum 2 (docs/COSTS.md)
    nat_gb: float = 0.045  # NAT data processed (docs/COSTS.md)
    log_ingest_gb: float = 0.50  # CloudWatch Logs standard ingestion
    # docs/COSTS.md prod's fixed charges other than the database and proxy: 2 NAT gateways
    # $65.70, 2 public IPv4 $7.30, secrets $0.80, SMS number ~$2, scheduled Lambdas ~$2.74.
    fixed_monthly: float = 78.54


# --- what one event asks of the system --------------------------------------------------------


@dataclass(frozen=True)
class Work:
    """What an event costs, in counts (per event) or in rates (per second) alike."""

    frames_in: float = 0.0  # WebSocket messages from clients (billed; API Gateway requests)
    pushes: float = 0.0  # @connections POSTs (billed as WebSocket messages; requests too)
    rest: float = 0.0  # REST API requests
    connects: float = 0.0  # new WebSocket connections
    invocations: float = 0.0  # Lambda invocations
    lambda_s: float = 0.0  # billed Lambda seconds
    write_tx: float = 0.0  # database write transactions
    sqs_requests: float = 0.0

    def __add__(self, other: Work) -> Work:
        return Work(**{name: value + getattr(other, name) for name, value in asdict(self).items()})

    def scaled(self, factor: float) -> Work:
        return Work(**{name: value * factor for name, value in asdict(self).items()})

    @property
    def api_requests(self) -> float:
        """What API Gateway's account throttle counts (assumption: every inbound frame,
        connect, REST request and @connections call is one request)."""
        return self.frames_in + self.pushes + self.rest + self.connects


def invocation(*, frames_in: float = 0, rest: float = 0, connects: float = 0,
               write_tx: float = 1, pushes: float = 0) -> Work:
    """One Lambda invocation that answers something and pushes `pushes` frames inline."""
    return Work(frames_in=frames_in, rest=rest, connects=connects, invocations=1,
                write_tx=write_tx, pushes=pushes,
                lambda_s=(BILLED_MS_PER_INVOCATION + pushes_wall_ms(pushes)) / 1000)


def pushes_wall_ms(pushes: float) -> float:
    """Billed time pushes add to an invocation: PUSH_CONCURRENCY at a time."""
    return pushes * PUSH_WALL_MS / PUSH_CONCURRENCY


def inline_pushes(pushes: float) -> Work:
    """Pushes made inside an invocation counted elsewhere."""
    return Work(pushes=pushes, lambda_s=pushes_wall_ms(pushes) / 1000)


def fan_out(connections: float, design: Design) -> Work:
    """One frame to `connections` connections: inline up to FANOUT_ASYNC_ABOVE, else through
    SQS (the sender enqueues in SendMessageBatch calls; a worker invocation per SQS message
    pushes its connections; the Lambda poller receives and deletes each message)."""
    if connections <= design.fanout_async_above:
        return inline_pushes(connections)
    messages = math.ceil(connections / design.connections_per_fanout_message)
    calls = math.ceil(messages / design.fanout_messages_per_call)
    enqueue = Work(sqs_requests=calls, lambda_s=calls * PUSH_WALL_MS / 1000)
    workers = Work(invocations=messages, sqs_requests=2 * messages, pushes=connections,
                   lambda_s=(messages * BILLED_MS_PER_INVOCATION
                             + pushes_wall_ms(connections)) / 1000)
    return enqueue + workers


@dataclass(frozen=True)
class Audience:
    """Who is online around one message in a conversation of `members` members, when each
    device is online with probability `online`."""

    members: int
    devices: float
    online: float

    @property
    def other_connections(self) -> float:
        """Connections that get the message: every member's online devices but the sender's
        sending one (which is online)."""
        return max(0.0, self.members * self.devices - 1) * self.online

    @property
    def receiving_users(self) -> float:
        """Other members with at least one device online."""
        return (self.members - 1) * (1 - (1 - self.online) ** self.devices)

    @property
    def receipt_audience(self) -> float:
        """Connections a receipt of one member's cursor goes to: everyone else's, the sender's
        sending connection included."""
        return max(0, self.members - 2) * self.devices * self.online + self.own_connections

    @property
    def own_connections(self) -> float:
        """An online user's connections: the one in use and their other devices online."""
        return 1 + (self.devices - 1) * self.online


def message_work(audience: Audience, workload: Workload, design: Design) -> dict[str, Work]:
    """One message sent, with everything it causes, by what causes it: the send (its `sent`
    and `message` pushes), the receivers' acks (with `delivered` receipts) and reads (with
    `read` receipts and `unread` to the reader's own connections), and its share of an
    `expired` frame. Every one of those pushes goes through `delivery.push_frames`, so each
    takes the queue when it targets more than FANOUT_ASYNC_ABOVE connections."""
    others = audience.other_connections
    receipts = receipt_connections(audience, design)
    acking = others if within(audience.members, design.ack_max_members) else 0.0
    # A user's delivered cursor moves (and its receipt goes out) on their first device's ack.
    delivering = audience.receiving_users if acking else 0.0
    reads = workload.reads_per_receiving_user * audience.receiving_users
    read = invocation(frames_in=1) + fan_out(receipts + audience.own_connections, design)
    return {
        "send": invocation(frames_in=1, pushes=1) + fan_out(others, design),
        "ack": invocation(frames_in=1).scaled(acking)
        + fan_out(receipts, design).scaled(delivering),
        "read": read.scaled(reads),
        "expired": fan_out(others + 1, design).scaled(1 / EXPIRED_MESSAGES_PER_FRAME)
        + Work(write_tx=1 / EXPIRY_BATCH + 1 / HOUSEKEEPING_BATCH),
    }


def receipt_connections(audience: Audience, design: Design) -> float:
    """Connections one member's receipt is pushed to: none above receipts_max_members (the
    reader's own hear only of the unread count), else every other member's or the sender's."""
    if not within(audience.members, design.receipts_max_members):
        return 0.0
    if design.receipts_to == "sender":
        return audience.own_connections  # the sender's connections
    return audience.receipt_audience


def within(members: int, cap: int | None) -> bool:
    """Whether a conversation of `members` members is at most `cap` (None: no cap)."""
    return cap is None or members <= cap


def connection_work(workload: Workload, online: float) -> Work:
    """One socket's life apart from its pings: the ticket and the conversation list over REST,
    $connect, the catch-up `sync`, $disconnect, and the presence frames when it is the user's
    only online device (online on connect, offline on disconnect)."""
    ticket = invocation(rest=1)  # its rate limit is the one write
    rest = ticket + invocation(rest=1, write_tx=0).scaled(REST_REQUESTS_PER_CONNECT - 1)
    alone = (1 - online) ** (workload.devices_per_user - 1)
    presence = 2 * alone * workload.presence_contacts * workload.devices_per_user * online
    connect = invocation(connects=1)
    sync = invocation(frames_in=1, pushes=1)
    disconnect = invocation()
    return rest + connect + sync + disconnect + inline_pushes(presence)


def refresh_work(workload: Workload, connections: float) -> Work:
    """GET /conversations every list_refresh_s on each connection that shows a big group
    (presence and cursors reach it no other way), per second: a read, no write."""
    refreshes = connections * workload.big_group_shown_share / workload.list_refresh_s
    return invocation(rest=1, write_tx=0).scaled(refreshes)


def ping_work() -> Work:
    """A ping and its pong; the ping counts its frame and touches the connection's row."""
    return invocation(frames_in=1, pushes=1)


# --- rates at one level of load ---------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """Rates at the day's average (level 1) or at its peak (level = peak_to_average)."""

    level: float
    online: float  # probability that a device holds a socket
    sends_per_s: float
    connections: float
    new_connections_per_s: float
    parts: dict[str, Work]  # per second, by what causes it (PARTS)

    @property
    def work(self) -> Work:
        return sum(self.parts.values(), Work())

    @property
    def lambda_concurrency(self) -> float:
        return self.work.lambda_s  # billed seconds per second = executions running at once

    @property
    def borrowed_db_connections(self) -> float:
        return self.work.write_tx * TRANSACTION_HOLD_MS / 1000


def online_fraction(workload: Workload, level: float) -> float:
    return min(1.0, workload.online_hours_per_device / 24 * level)


def connects_per_device_per_day(workload: Workload) -> float:
    """Each session opens a socket, and one more every 2 hours it lasts: API Gateway closes a
    connection after 2 hours whatever happens (an always-online device: 12 a day)."""
    session_h = workload.online_hours_per_device / workload.sessions_per_device
    return workload.sessions_per_device * math.ceil(session_h / 2)


PARTS = ("send", "ack", "read", "expired", "connection", "refresh", "ping")


def load_at(workload: Workload, design: Design, level: float) -> Load:
    online = online_fraction(workload, level)
    devices = workload.daily_users * workload.devices_per_user
    sends = workload.daily_users * workload.messages_per_user_per_day / DAY_S * level
    connections = devices * online
    new_connections = devices * connects_per_device_per_day(workload) / DAY_S * level
    parts = dict.fromkeys(PARTS, Work())
    for members, share in workload.group_mix:
        audience = Audience(members, workload.devices_per_user, online)
        for part, work in message_work(audience, workload, design).items():
            parts[part] += work.scaled(share * sends)
    parts["connection"] = connection_work(workload, online).scaled(new_connections)
    parts["refresh"] = refresh_work(workload, connections)
    parts["ping"] = ping_work().scaled(connections / workload.ping_interval_s)
    return Load(level, online, sends, connections, new_connections, parts)


# --- rows held --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rows:
    messages: float
    idempotency_keys: float
    connections: float
    registered_users: float

    @property
    def bytes(self) -> float:
        return (self.messages * MESSAGE_ROW_BYTES
                + self.idempotency_keys * IDEMPOTENCY_KEY_ROW_BYTES
                + self.connections * CONNECTION_ROW_BYTES
                + self.registered_users * REGISTERED_USER_BYTES)


def rows_held(workload: Workload, average: Load) -> Rows:
    """Messages live for the TTL; their idempotency keys for max(24 h, TTL)."""
    return Rows(messages=average.sends_per_s * workload.ttl_s,
                idempotency_keys=average.sends_per_s * max(IDEMPOTENCY_WINDOW_S, workload.ttl_s),
                connections=average.connections,
                registered_users=workload.daily_users * workload.registered_per_daily_user)


# --- quotas -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quota:
    key: str
    what: str
    limit: float
    unit: str
    adjustable: str
    source: str


def quotas(deployment: Deployment) -> list[Quota]:
    """The quotas and component limits every scale is checked against, in a fixed order."""
    proxy = deployment.writer_max_connections * deployment.proxy_max_connections_percent / 100
    return [
        Quota("new_connections", "API Gateway new WebSocket connections/s",
              deployment.new_connections_per_s, "connections/s",
              "yes (Service Quotas L-9ED1E49A)", WEBSOCKET_QUOTAS_URL),
        Quota("account_requests", "API Gateway account throttle (REST, frames, @connections)",
              deployment.account_requests_per_s, "requests/s",
              "yes (Service Quotas L-8A5B8E43)", APIGW_QUOTAS_URL),
        Quota("lambda_concurrency", "Lambda concurrent executions",
              deployment.lambda_concurrency, "executions", "yes", LAMBDA_QUOTAS_URL),
        Quota("proxy_connections", "RDS Proxy database connections",
              proxy, "connections",
              "by instance class, max_connections or MaxConnectionsPercent",
              f"{RDS_MAX_CONNECTIONS_URL} ; {PROXY_SETTINGS_URL}"),
        Quota("writer_transactions", "database writer's write transactions/s",
              deployment.writer_transactions_per_s, "transactions/s",
              "by instance class, or more writers", f"{RESULTS} (this machine)"),
        Quota("storage", "database storage allocated",
              deployment.storage_gib * GIB, "bytes", "yes (DatabaseStorageGiB)",
              f"infra/stack.yaml ; {RDS_STORAGE_URL}"),
    ]


def demand(key: str, peak: Load, rows: Rows) -> float:
    """What the peak (or, for storage, the rows held) asks of quota `key`."""
    return {
        "new_connections": peak.new_connections_per_s,
        "account_requests": peak.work.api_requests,
        "lambda_concurrency": peak.lambda_concurrency,
        "proxy_connections": peak.borrowed_db_connections,
        "writer_transactions": peak.work.write_tx,
        "storage": rows.bytes,
    }[key]


def headroom(deployment: Deployment, peak: Load, rows: Rows) -> dict[str, float]:
    """limit / demand per quota: under 1 means the quota is hit."""
    return {q.key: q.limit / max(demand(q.key, peak, rows), 1e-12) for q in quotas(deployment)}


def first_hit(ratios: dict[str, float]) -> str:
    """The quota with the smallest headroom under 1, or "none"."""
    key, ratio = min(ratios.items(), key=lambda item: item[1])
    return key if ratio < 1 else "none"


# --- cost -------------------------------------------------------------------------------------


def tiered(quantity: float, tiers: tuple[tuple[float, float], ...]) -> float:
    """Dollars for `quantity` units priced per million in tiers of (size, price)."""
    dollars, left = 0.0, quantity
    for size, per_million in tiers:
        taken = min(left, size)
        dollars += taken / 1e6 * per_million
        left -= taken
        if left <= 0:
            break
    return dollars


def writers_needed(deployment: Deployment, peak: Load) -> int:
    """Writer clusters the peak's write transactions need, at the measured rate per vCPU."""
    return max(1, math.ceil(peak.work.write_tx / deployment.writer_transactions_per_s))


def monthly_cost(deployment: Deployment, prices: Prices, average: Load, peak: Load,
                 rows: Rows) -> dict[str, float]:
    """Dollars a month at the average rates; the database sized for the peak's writes."""
    month = average.work.scaled(MONTH_S)
    writers = writers_needed(deployment, peak)
    copies = 2 if deployment.multi_az else 1
    storage_gb = max(deployment.storage_gib * writers, rows.bytes * 1.25 / GIB)
    return {
        "websocket_messages": tiered(month.frames_in + month.pushes,
                                     prices.websocket_message_tiers),
        "connection_minutes": average.connections * MONTH_S / 60 / 1e6
        * prices.connection_minute_per_million,
        "rest_requests": tiered(month.rest, prices.rest_request_tiers),
        "lambda_requests": month.invocations / 1e6 * prices.lambda_request_per_million,
        "lambda_compute": month.lambda_s * deployment.lambda_memory_gb * prices.lambda_gb_second,
        "sqs": month.sqs_requests / 1e6 * prices.sqs_request_per_million,
        "nat_data": (month.pushes + month.sqs_requests) * NAT_BYTES_PER_CALL / GB
        * prices.nat_gb,
        "logs": month.invocations * LOG_BYTES_PER_INVOCATION / GB * prices.log_ingest_gb,
        "database": writers * copies * prices.writer_hourly * MONTH_H
        + storage_gb * prices.gp3_gb_month * copies,
        "rds_proxy": writers * max(2, deployment.writer_vcpus) * prices.proxy_vcpu_hour * MONTH_H,
        "fixed": prices.fixed_monthly,
    }


# --- the estimate -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    workload: Workload
    design: Design
    deployment: Deployment
    average: Load
    peak: Load
    rows: Rows
    headroom: dict[str, float]
    cost: dict[str, float] = field(default_factory=dict)

    @property
    def first_hit(self) -> str:
        return first_hit(self.headroom)

    @property
    def monthly_total(self) -> float:
        return sum(self.cost.values())

    @property
    def writers(self) -> int:
        return writers_needed(self.deployment, self.peak)

    @property
    def reconnect_all_s(self) -> float:
        """Seconds to reconnect every peak connection at the new-connection quota (after a
        blip that drops them all: a deploy, a network event)."""
        return self.peak.connections / self.deployment.new_connections_per_s


def estimate(workload: Workload, design: Design | None = None,
             deployment: Deployment | None = None, prices: Prices | None = None) -> Estimate:
    design, deployment, prices = design or Design(), deployment or Deployment(), prices or Prices()
    average = load_at(workload, design, 1.0)
    peak = load_at(workload, design, workload.peak_to_average)
    rows = rows_held(workload, average)
    return Estimate(workload, design, deployment, average, peak, rows,
                    headroom(deployment, peak, rows),
                    monthly_cost(deployment, prices, average, peak, rows))


# --- tables -----------------------------------------------------------------------------------

QUOTA_LABELS = {
    "new_connections": "new connections/s",
    "account_requests": "API Gateway requests/s",
    "lambda_concurrency": "Lambda concurrency",
    "proxy_connections": "RDS Proxy connections",
    "writer_transactions": "writer transactions/s",
    "storage": "storage",
}
# Issue 24 before its receipt rule: every member's ack and read pushed to every member.
RECEIPTS_TO_ALL = Design(receipts_max_members=None)
# Not built: in groups of at most 50, receipts only to the sender; no acks above 50 members.
PROPOSED = Design(receipts_to="sender", ack_max_members=50)
WHAT_IFS: tuple[tuple[str, Design, dict[str, Any]], ...] = (
    ("before the receipt rule: receipts to every member in every group", RECEIPTS_TO_ALL, {}),
    ("as built: no receipts pushed in groups of more than 50 members", Design(), {}),
    ("and in groups of at most 50, receipts only to the sender of the messages they cover",
     Design(receipts_to="sender"), {}),
    ("and clients ack only in conversations of at most 50 members (proposed)", PROPOSED, {}),
    ("proposed, and pings every 5 minutes instead of 1", PROPOSED, {"ping_interval_s": 300.0}),
)
WHAT_IF_USERS = 1_000_000


def number(value: float) -> str:
    """Readable magnitudes: 3 significant figures, thousands separated."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{round(value):,}"
    digits = max(0, 2 - int(math.floor(math.log10(abs(value)))))
    return f"{value:,.{digits}f}"


def dollars(value: float) -> str:
    return f"${round(value):,}"


def ratio(value: float, *, mark: bool = True) -> str:
    """A headroom ratio; under 1 (a quota hit) in bold."""
    if value < 0.01:
        text = f"{value:.2g}"
    else:
        text = f"{value:.2f}" if value < 10 else f"{value:,.0f}"
    return f"**{text}**" if mark and value < 1 else text


def summary_row(e: Estimate) -> dict[str, str]:
    return {
        "daily users": f"{e.workload.daily_users:,}",
        "connections avg / peak": f"{number(e.average.connections)} / "
                                  f"{number(e.peak.connections)}",
        "new connections/s peak": number(e.peak.new_connections_per_s),
        "@connections/s peak": number(e.peak.work.pushes),
        "API Gateway requests/s peak": number(e.peak.work.api_requests),
        "Lambda invocations/s peak": number(e.peak.work.invocations),
        "Lambda concurrency peak": number(e.peak.lambda_concurrency),
        "DB write tx/s peak": number(e.peak.work.write_tx),
        "messages held": number(e.rows.messages),
        "storage GiB": number(e.rows.bytes / GIB),
        "writers needed": str(e.writers),
        "$ / month": dollars(e.monthly_total),
        "first hit (headroom)": hit_text(e),
    }


def headroom_row(e: Estimate) -> dict[str, str]:
    row = {"daily users": f"{e.workload.daily_users:,}"}
    row.update({QUOTA_LABELS[key]: ratio(value) for key, value in e.headroom.items()})
    row["reconnect everyone at 500/s"] = f"{number(e.reconnect_all_s)} s"
    return row


def cost_row(name: str, estimates: list[Estimate]) -> dict[str, str]:
    row = {"component": name.replace("_", " ")}
    for e in estimates:
        row[f"{e.workload.daily_users:,}"] = dollars(e.cost[name])
    return row


def what_if_row(label: str, e: Estimate) -> dict[str, str]:
    return {
        f"at {WHAT_IF_USERS:,} daily users": label,
        "@connections/s peak": number(e.peak.work.pushes),
        "API Gateway requests/s peak": number(e.peak.work.api_requests),
        "Lambda concurrency peak": number(e.peak.lambda_concurrency),
        "DB write tx/s peak": number(e.peak.work.write_tx),
        "$ / month": dollars(e.monthly_total),
        "first hit (headroom)": hit_text(e),
    }


def part_row(part: str, work: Work) -> dict[str, str]:
    return {
        "caused by": part,
        "API Gateway requests/s": number(work.api_requests),
        "@connections/s": number(work.pushes),
        "Lambda invocations/s": number(work.invocations),
        "Lambda concurrency": number(work.lambda_s),
        "DB write tx/s": number(work.write_tx),
    }


def message_row(members: int, workload: Workload) -> dict[str, str]:
    """What one message in a conversation of `members` members causes at peak: before the
    receipt rule (pushes only), as built and proposed."""
    online = online_fraction(workload, workload.peak_to_average)
    audience = Audience(members, workload.devices_per_user, online)

    def total(design: Design) -> Work:
        return sum(message_work(audience, workload, design).values(), Work())

    before, built, proposed = total(RECEIPTS_TO_ALL), total(Design()), total(PROPOSED)
    return {
        "members": f"{members:,}",
        "connections reached": number(audience.other_connections),
        "@connections calls, receipts to all": number(before.pushes),
        "@connections calls, as built": number(built.pushes),
        "invocations, as built": number(built.invocations),
        "write tx, as built": number(built.write_tx),
        "@connections calls, proposed": number(proposed.pushes),
        "invocations, proposed": number(proposed.invocations),
        "write tx, proposed": number(proposed.write_tx),
        "SQS requests, as built": number(built.sqs_requests),
        "SQS requests, proposed": number(proposed.sqs_requests),
    }


def hit_text(e: Estimate) -> str:
    hit = e.first_hit
    if hit == "none":
        return "none"
    return f"{QUOTA_LABELS[hit]} ({ratio(e.headroom[hit], mark=False)})"


def scale_estimates(design: Design | None = None) -> list[Estimate]:
    return [estimate(Workload(daily_users=users), design) for users in SCALES]


def what_if_estimates() -> list[tuple[str, Estimate]]:
    return [(label, estimate(replace(Workload(daily_users=WHAT_IF_USERS), **changes), design))
            for label, design, changes in WHAT_IFS]


def cost_rows(estimates: list[Estimate]) -> list[dict[str, str]]:
    rows = [cost_row(name, estimates) for name in estimates[0].cost]
    rows.append({"component": "**total**",
                 **{f"{e.workload.daily_users:,}": f"**{dollars(e.monthly_total)}**"
                    for e in estimates}})
    return rows


def tables() -> dict[str, list[dict[str, str]]]:
    built, proposed = scale_estimates(), scale_estimates(PROPOSED)
    at_what_if = estimate(Workload(daily_users=WHAT_IF_USERS))
    workload = Workload(daily_users=WHAT_IF_USERS)
    return {
        "one message at peak, everything it causes (acks, reads, receipts, expiry included)":
            [message_row(members, workload) for members, _ in workload.group_mix],
        "as built: capacity by daily users (peak = 3 x average)":
            [summary_row(e) for e in built],
        "as built: headroom at peak (quota / demand; under 1 = hit)":
            [headroom_row(e) for e in built],
        f"as built: what the peak's work is made of at {WHAT_IF_USERS:,} daily users":
            [part_row(part, work) for part, work in at_what_if.peak.parts.items()],
        "as built: monthly cost by component": cost_rows(built),
        "proposed (receipts in groups of at most 50 to the sender only, acks only up to 50"
        " members): capacity by daily users": [summary_row(e) for e in proposed],
        "proposed: headroom at peak": [headroom_row(e) for e in proposed],
        f"what each change does at {WHAT_IF_USERS:,} daily users":
            [what_if_row(label, e) for label, e in what_if_estimates()],
    }


def markdown_table(rows: list[dict[str, str]]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |",
             "| " + " | ".join("---" if i == 0 else "---:" for i in range(len(columns))) + " |"]
    lines += ["| " + " | ".join(row[c] for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def render_doc_tables() -> str:
    """What docs/SCALING.md holds between its markers."""
    parts = ["Generated by `python -m bench.capacity --write-doc`; do not edit by hand."]
    for title, rows in tables().items():
        parts.append(f"**{title[0].upper()}{title[1:]}**\n\n{markdown_table(rows)}")
    return "\n\n".join(parts)


def doc_tables(text: str) -> str:
    """The part of a document between the markers (stripped)."""
    start = text.index(BEGIN_MARKER) + len(BEGIN_MARKER)
    return text[start:text.index(END_MARKER, start)].strip()


def with_tables(text: str, tables_text: str) -> str:
    start = text.index(BEGIN_MARKER) + len(BEGIN_MARKER)
    end = text.index(END_MARKER, start)
    return f"{text[:start]}\n{tables_text}\n{text[end:]}"


# --- measuring rows (the only part that touches a database) -----------------------------------


def measure_row_sizes(rows: int = 200_000) -> dict[str, float]:
    """Bytes per row (data and indexes) of messages, idempotency keys and connections, filled
    with `rows` rows each in a throwaway MariaDB database migrated to the current schema."""
    import pymysql  # only this dev-only measurement needs a database

    from bench.storage import mysql_database
    from chalicelib.config import parse_database_url
    from chalicelib.ids import new_id
    from chalicelib.storage.engines import create_engine
    from chalicelib.storage.migrate import migrate

    with mysql_database() as url:
        settings = parse_database_url(url)
        migrate(create_engine(settings))
        db = pymysql.connect(host=settings.host, port=settings.port, user=settings.user,
                             password=settings.password or "", database=settings.name,
                             autocommit=True)
        with db.cursor() as cur:
            fill_tables(cur, rows, new_id)
            sizes = {}
            for table in ("messages", "idempotency_keys", "connections"):
                cur.execute(f"ANALYZE TABLE {table}")
                cur.fetchall()
                cur.execute("SELECT data_length + index_length FROM information_schema.tables"
                            " WHERE table_schema = %s AND table_name = %s",
                            (settings.name, table))
                sizes[table] = round(int(cur.fetchone()[0]) / rows, 1)
        db.close()
    return sizes


def fill_tables(cur: Any, rows: int, new_id: Any) -> None:
    """`rows` rows per table, shaped as the app writes them (ULIDs, 100-byte bodies)."""
    conversations = [new_id() for _ in range(max(1, rows // 50))]
    users = [new_id() for _ in range(max(1, rows // 20))]
    body, now = "x" * 100, 1_767_225_600_000
    for start in range(0, rows, 1000):
        chunk = range(start, min(rows, start + 1000))
        msgs = [(new_id(), conversations[i % len(conversations)], i, users[i % len(users)],
                 new_id(), new_id(), body, now + i, now + DAY_S * 1000 + i) for i in chunk]
        cur.executemany("INSERT INTO messages (id, conversation_id, seq, sender_id,"
                        " sender_device_id, client_msg_id, body, created_at, expires_at)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", msgs)
        keys = [(m[3], m[5], m[1], m[0], m[2], "h" * 64, m[7], m[8], m[8]) for m in msgs]
        cur.executemany("INSERT INTO idempotency_keys (sender_id, client_msg_id,"
                        " conversation_id, message_id, seq, body_hash, created_at,"
                        " message_expires_at, keep_until)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", keys)
        conns = [("Ab1cD2eF3gH4iJ=" + str(i), users[i % len(users)], new_id(), now, now)
                 for i in chunk]
        cur.executemany("INSERT INTO connections (id, user_id, device_id, connected_at,"
                        " last_seen_at) VALUES (%s, %s, %s, %s, %s)", conns)


# --- command line -----------------------------------------------------------------------------


def estimate_json(e: Estimate) -> dict[str, Any]:
    """Everything about one scale, for tools."""
    return {
        "daily_users": e.workload.daily_users,
        "average": load_json(e.average), "peak": load_json(e.peak),
        "rows": {**asdict(e.rows), "bytes": e.rows.bytes},
        "headroom": e.headroom, "first_hit": e.first_hit, "writers_needed": e.writers,
        "reconnect_all_s": e.reconnect_all_s,
        "monthly_cost": e.cost, "monthly_total": e.monthly_total,
    }


def load_json(load: Load) -> dict[str, Any]:
    return {"online": load.online, "sends_per_s": load.sends_per_s,
            "connections": load.connections, "new_connections_per_s": load.new_connections_per_s,
            "api_requests_per_s": load.work.api_requests,
            "lambda_concurrency": load.lambda_concurrency,
            "borrowed_db_connections": load.borrowed_db_connections,
            "per_s": asdict(load.work),
            "parts_per_s": {part: asdict(work) for part, work in load.parts.items()}}


def print_all() -> None:
    for title, rows in tables().items():
        emit(f"capacity: {title}", rows)
    print(json.dumps({"capacity_model": "inputs, quotas, prices and estimates",
                      "assumptions": asdict(Workload(0)),
                      "design": asdict(Design()), "deployment": asdict(Deployment()),
                      "quotas": [asdict(q) for q in quotas(Deployment())],
                      "prices": PRICES_READ, "price_pages": PRICE_PAGES,
                      "other_sources": OTHER_SOURCES,
                      "scales": [estimate_json(e) for e in scale_estimates()],
                      "proposed_design": asdict(PROPOSED),
                      "proposed_scales": [estimate_json(e) for e in scale_estimates(PROPOSED)]},
                     default=str))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write-doc", action="store_true", help="rewrite docs/SCALING.md")
    action.add_argument("--check-doc", action="store_true",
                        help="exit 1 when docs/SCALING.md's tables are stale")
    action.add_argument("--measure-rows", action="store_true",
                        help="bytes per row on the local MariaDB (BENCH_MYSQL_URL)")
    args = parser.parse_args(argv)
    if args.measure_rows:
        print(json.dumps({"bench": "capacity: bytes per row", "rows": measure_row_sizes()}))
        return 0
    if args.write_doc:
        DOC_PATH.write_text(with_tables(DOC_PATH.read_text(encoding="utf-8"),
                                        render_doc_tables()), encoding="utf-8")
        return 0
    if args.check_doc:
        if doc_tables(DOC_PATH.read_text(encoding="utf-8")) != render_doc_tables():
            print("docs/SCALING.md is stale: run python -m bench.capacity --write-doc",
                  file=sys.stderr)
            return 1
        return 0
    print_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
