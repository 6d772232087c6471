"""Streaming standbys of the embedded primary: ``pg_basebackup -R`` copies, one slot each.

Standby ``replica-K`` lives in ``<cluster_dir>/replica-K`` (``standby.signal`` and
``primary_conninfo`` written by ``-R``), streams through its own physical replication slot
``ibcbench_replica_K``, listens on its own port with ``hot_standby = on`` and the kit's
``ibcbench.conf`` (the primary's settings with the standby's port, plus a standby section). Its
``primary_conninfo`` holds the password in ``postgresql.auto.conf``, which only the server user can
read. :class:`Standbys` is the standby half of :class:`ibcbench.infra.scaleout.ScaleOut`.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from ibcbench.errors import ConfigError, ServerError
from ibcbench.infra import serverauth
from ibcbench.infra.members import (
    REPLICA_PREFIX,
    SLOT_PREFIX,
    STATE_NAME,
    MemberFiles,
    ReplicaState,
    TopologyState,
    conf_value,
    pid_alive,
    write_if_changed,
)
from ibcbench.infra.pidfile import check_postmaster_pid, remove_stale
from ibcbench.infra.server import LocalServer
from ibcbench.infra.serverconf import conf_text, find_pg_bindir, write_conf

MAX_REPLICAS = 8  # max_wal_senders and max_replication_slots are 10 by default
#: standby settings written into each standby's ibcbench.conf (``replica_settings`` adds to them)
STANDBY_DEFAULTS = {
    "hot_standby": "on",
    "hot_standby_feedback": "off",
    "max_standby_streaming_delay": "30s",
    "wal_receiver_status_interval": "1s",
}


class Standbys(MemberFiles):
    """The standbys beside one embedded primary: start, stop, configure, remove."""

    def replica_urls(self) -> list[str]:
        return [
            self.member_url(r.port)
            for r in self.read_state().replicas
            if self.replica_running(r.index)
        ]

    def _up_replicas(
        self, state: TopologyState, replicas: int | None, owner_pid: int | None, user: Any
    ) -> tuple[TopologyState, list[str], list[str]]:
        """``replicas`` standbys running (None: as recorded), those above removed; returns the
        state and the names started and removed."""
        started: list[str] = []
        removed: list[str] = []
        want = len(state.replicas) if replicas is None else replicas
        if want or state.replicas:
            self._allow_replication(user)
        for r in [r for r in state.replicas if r.index > want]:
            self._remove_replica(r)
            removed.append(r.name)
        kept = [r for r in state.replicas if r.index <= want]
        by_index = {r.index: r for r in kept}
        for index in range(1, want + 1):
            rep = by_index.get(index)
            if rep is None:
                rep = ReplicaState(
                    index, self._free_port(), f"{SLOT_PREFIX}{index}", owner_pid=owner_pid
                )
                by_index[index] = rep
                state = replace(
                    state, replicas=tuple(sorted(by_index.values(), key=lambda r: r.index))
                )
                self._write_state(state)  # recorded before anything runs
            if self.replica_running(index):
                if self._write_replica_conf(rep, user):  # e.g. the primary moved to another port
                    self._reload_replica(index, user)
            else:
                self._start_replica(rep, user)
                by_index[index] = self._replica(index)  # its port may have moved
                started.append(rep.name)
        state = replace(state, replicas=tuple(sorted(by_index.values(), key=lambda r: r.index)))
        self._write_state(state)
        return state, started, removed

    def restart_replica(self, index: int = 1, *, down_s: float = 0.0) -> None:
        """Stop a standby (fast), wait ``down_s``, start it again: it catches up from its slot."""
        rep = self._replica(index)
        self._stop_replica(index)
        if down_s > 0:
            time.sleep(down_s)
        self._start_replica(rep, self.server._server_user())

    def configure_replica(self, index: int = 1, **settings: str) -> None:
        """Change a standby's settings (e.g. ``hot_standby_feedback="on"``) and reload it."""
        rep = self._replica(index)
        merged = {**rep.settings, **{k: str(v) for k, v in settings.items()}}
        state = self.read_state()
        rep = replace(rep, settings=merged)
        self._write_state(
            replace(state, replicas=tuple(rep if r.index == index else r for r in state.replicas))
        )
        user = self.server._server_user()
        self._write_replica_conf(rep, user)
        if self.replica_running(index):
            self._reload_replica(index, user)

    def _reload_replica(self, index: int, user: Any) -> None:
        bindir = find_pg_bindir(self.settings.pg_bindir)
        self.server._run(
            [str(bindir / "pg_ctl"), "-D", str(self.replica_dir(index)), "reload"], user
        )

    # ---- standbys ------------------------------------------------------------------------------
    def _replica(self, index: int) -> ReplicaState:
        for r in self.read_state().replicas:
            if r.index == index:
                return r
        raise ConfigError(
            f"the embedded server {self.settings.name!r} has no {REPLICA_PREFIX}{index}: "
            f"run `ibcbench db up --replicas {index}`"
        )

    def _replica_folders(self) -> list[Path]:
        if not self.settings.cluster_dir.is_dir():
            return []
        return sorted(
            p
            for p in self.settings.cluster_dir.iterdir()
            if p.is_dir()
            and p.name.startswith(REPLICA_PREFIX)
            and p.name[len(REPLICA_PREFIX) :].isdigit()
        )

    def _allow_replication(self, user: Any) -> None:
        """A primary started before the kit wrote pg_hba's replication lines gets them, reloaded."""
        hba = self.settings.data_dir / "pg_hba.conf"
        if "local replication" in hba.read_text():
            return
        state = self.server.read_state()
        assert state is not None
        write_conf(self.settings, state.port, state.timescaledb_license or "timescale", user)
        with self._admin() as conn:
            conn.execute("SELECT pg_reload_conf()")

    def _write_replica_conf(self, rep: ReplicaState, user: Any) -> bool:
        """The standby's ibcbench.conf: the primary's settings on the standby's port, the standby
        section, and primary_conninfo to the primary's current port (it moves when the primary is
        restarted on another port). Returns whether the file changed."""
        folder = self.replica_dir(rep.index)
        primary = self.server.read_state()
        assert primary is not None
        conf = folder / "ibcbench.conf"
        standby = {**STANDBY_DEFAULTS, **rep.settings}
        text = conf_text(self.settings, rep.port, primary.timescaledb_license or "timescale")
        text += f"\n# {rep.name}: a streaming standby of the primary (ibcbench.infra.standbys)\n"
        text += "".join(f"{k} = {conf_value(v)}\n" for k, v in standby.items())
        changed = write_if_changed(conf, text, user)
        changed = write_if_changed(folder / "pg_hba.conf", serverauth.HBA_TEXT, user) or changed
        # primary_conninfo holds the password: postgresql.auto.conf (read last, where
        # pg_basebackup -R wrote it) is the server user's alone
        auto = folder / "postgresql.auto.conf"
        lines = auto.read_text().splitlines(keepends=True) if auto.exists() else []
        kept = [ln for ln in lines if not ln.startswith(("primary_conninfo", "primary_slot_name"))]
        params: dict[str, Any] = {
            "host": primary.socket_dir,
            "port": primary.port,
            "user": primary.role,
            "application_name": rep.name,
        }
        password = primary.password()
        if password is not None:
            params["password"] = password
        kept.append(f"primary_conninfo = {conf_value(make_conninfo(**params))}\n")
        kept.append(f"primary_slot_name = '{rep.slot}'\n")
        return write_if_changed(auto, "".join(kept), user) or changed

    def _start_replica(self, rep: ReplicaState, user: Any) -> None:
        """Start a standby (copying the primary first when it has no complete copy) and wait until
        it streams; it moves to another port when its own was taken while it was stopped."""
        bindir = find_pg_bindir(self.settings.pg_bindir)
        folder = self.replica_dir(rep.index)
        if not (folder / "PG_VERSION").exists() or not (folder / "standby.signal").exists():
            self._basebackup(rep, user)
        if not LocalServer.port_is_free(rep.port):  # taken while the standby was stopped
            rep = replace(rep, port=self._free_port())
            self._replace_replica(rep)
        self._write_replica_conf(rep, user)
        # a postmaster.pid of a killed standby whose PID another process has since taken would make
        # the new postmaster refuse to start
        remove_stale(check_postmaster_pid(folder))
        try:
            self.server._run(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(folder),
                    "-l",
                    str(self.replica_log(rep.index)),
                    "-w",
                    "-t",
                    "120",
                    "start",
                ],
                user,
            )
        except ServerError as exc:
            raise ServerError(
                f"{rep.name} did not start: {exc} (see {self.replica_log(rep.index)})"
            ) from exc
        self._wait_streaming(rep)

    def _basebackup(self, rep: ReplicaState, user: Any) -> None:
        """A fresh ``pg_basebackup -R`` copy of the primary in the standby's folder, through its
        slot (created here when missing); a copy that never finished is removed first."""
        bindir = find_pg_bindir(self.settings.pg_bindir)
        folder = self.replica_dir(rep.index)
        primary = self.server.read_state()
        assert primary is not None
        if folder.exists():
            shutil.rmtree(folder)  # a copy that never finished: the kit's own folder
        with self._admin() as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (rep.slot,)
            ).fetchone()
            if not exists:
                conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (rep.slot,))
        conninfo = make_conninfo(
            host=primary.socket_dir,
            port=primary.port,
            user=primary.role,
            application_name=rep.name,
        )
        password = primary.password()
        self.server._run(
            [
                str(bindir / "pg_basebackup"),
                "-D",
                str(folder),
                "-d",
                conninfo,
                "-R",
                "-S",
                rep.slot,
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ],
            user,
            timeout=3600,
            extra_env={"PGPASSWORD": password} if password else None,
        )

    def _replace_replica(self, rep: ReplicaState) -> None:
        state = self.read_state()
        self._write_state(
            replace(
                state, replicas=tuple(rep if r.index == rep.index else r for r in state.replicas)
            )
        )

    def _wait_streaming(self, rep: ReplicaState, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        with self._admin() as conn:
            while True:
                row = conn.execute(
                    "SELECT state FROM pg_stat_replication WHERE application_name = %s", (rep.name,)
                ).fetchone()
                if row and row[0] == "streaming":
                    return
                if time.monotonic() > deadline:
                    raise ServerError(
                        f"{rep.name} started but does not stream from the primary: see {self.replica_log(rep.index)}"
                    )
                time.sleep(0.1)

    def _stop_replica(self, index: int) -> bool:
        """``pg_ctl stop`` of a standby whose postmaster.pid names its postmaster; a stale PID is
        not signalled."""
        folder = self.replica_dir(index)
        if not self.replica_running(index):
            return False
        bindir = find_pg_bindir(self.settings.pg_bindir)
        self.server._run(
            [str(bindir / "pg_ctl"), "-D", str(folder), "-m", "fast", "-w", "stop"],
            self.server._server_user(),
        )
        return True

    def _remove_replica(self, rep: ReplicaState) -> None:
        """Stop a standby, drop its slot (an unused slot keeps WAL forever) and delete its copy."""
        self._stop_replica(rep.index)
        if self.server.is_running():
            with self._admin() as conn:
                conn.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                    " WHERE slot_name = %s AND NOT active",
                    (rep.slot,),
                )
        folder = self.replica_dir(rep.index)
        if folder.exists():
            shutil.rmtree(folder)
        self.replica_log(rep.index).unlink(missing_ok=True)
        state = self.read_state()
        self._write_state(
            replace(state, replicas=tuple(r for r in state.replicas if r.index != rep.index))
        )

    def _clean_stale_replicas(self) -> list[str]:
        """Standbys of runs that are gone, standby folders and slots the state does not name (a run
        killed while creating a standby): removed; one line each."""
        cleaned: list[str] = []
        state = self.read_state()
        for r in state.replicas:
            if r.owner_pid is not None and not pid_alive(r.owner_pid):
                self._remove_replica(r)
                cleaned.append(f"{r.name} of a run that is gone (pid {r.owner_pid}) removed")
        state = self.read_state()
        known = {r.index for r in state.replicas}
        for folder in self._replica_folders():
            index = int(folder.name[len(REPLICA_PREFIX) :])
            if index not in known:
                self._remove_replica(ReplicaState(index, 0, f"{SLOT_PREFIX}{index}"))
                cleaned.append(f"{folder.name} not in {STATE_NAME} removed")
        if self.server.is_running():
            with self._admin() as conn:
                slots = [
                    r[0]
                    for r in conn.execute(
                        "SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE %s AND NOT active",
                        (SLOT_PREFIX + "%",),
                    ).fetchall()
                ]
                for slot in slots:
                    if slot not in {r.slot for r in state.replicas}:
                        conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                        cleaned.append(f"replication slot {slot} of no standby dropped")
        return cleaned


def replication_rows(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """pg_stat_replication joined with the slots, on the primary: lag in bytes (sent - replay) and
    seconds (replay_lag), slot active and restart_lsn."""
    cur = conn.execute(
        "SELECT r.application_name, r.state, r.sent_lsn::text, r.replay_lsn::text,"
        " pg_wal_lsn_diff(r.sent_lsn, r.replay_lsn)::bigint AS lag_bytes,"
        " pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::bigint AS behind_bytes,"
        " extract(epoch FROM r.replay_lag)::float8 AS replay_lag_s,"
        " s.slot_name, s.active, s.restart_lsn::text"
        " FROM pg_stat_replication r LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid"
        " ORDER BY r.application_name"
    )
    cols = [d.name for d in cur.description or []]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def standby_lag(conn: psycopg.Connection) -> tuple[str | None, float | None, bool]:
    """On a standby: its replay LSN, seconds since the last replayed transaction (0 when it has
    replayed all it received), and whether replay is paused."""
    row = conn.execute(
        "SELECT pg_last_wal_replay_lsn()::text,"
        " CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
        " ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END,"
        " pg_get_wal_replay_pause_state() <> 'not paused'"
    ).fetchone()
    assert row is not None
    return row[0], row[1], bool(row[2])
