"""REST personas: the query mix of an artist's app (inbox, history pages, unread count, mark read, archive) and
the upload path (presign -> PUT to S3 -> image message).

Every request's Locust name is `METHOD route-template`, the service's own `route` label, so the client's and the
server's views of one endpoint join. Answers are validated (shape, ownership, order), not only their status: a
200 with the wrong content is a failure.
"""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime
from typing import Any

from locust import between, task
from locust.contrib.fasthttp import FastHttpUser, ResponseContextManager
from locust.exception import RescheduleTask

from loadtests.chat import mint
from loadtests.config import RUN, Config

CONVERSATIONS = "/messaging/conversations"
ONE = "/messaging/conversations/{id}"
MESSAGES = "/messaging/conversations/{id}/messages"
# messages each REST conversation holds at least: sent once by its customer (within the rate limit's burst of
# 20), with fixed keys, so a rerun stores nothing
HISTORY_SEED = 16


def _json(resp: ResponseContextManager) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _when(stamp: Any) -> datetime:
    try:
        return datetime.fromisoformat(str(stamp))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def _check(resp: ResponseContextManager, ok: bool, why: str) -> bool:
    if not ok:
        resp.failure(f"{why}: HTTP {resp.status_code} {str(resp.text)[:160]}")
    return ok


class RestUser(FastHttpUser):
    """An artist with a set of conversations, reading and tidying its inbox."""

    abstract = True
    config: Config
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        cfg = self.config
        persona = cfg.scenario.personas.rest
        count = persona.conversations if persona else 10
        self.index = RUN.next_index("rest", getattr(self.environment.runner, "worker_index", 0), cfg.pair_stride)
        self.artist, customers = cfg.rest_ids(self.index, count)
        RUN.started.wait()      # spawned before the run's clock starts (PRESPAWN): its requests belong to the run
        self.auth = {"Authorization": f"Bearer {mint(cfg, self.artist, 'artist')}"}
        self.conversations: list[int] = []
        for customer in customers:
            conv = self._create(customer)
            self.conversations.append(conv["id"])
            if not conv.get("last_message"):
                self._seed_history(conv["id"], customer)

    def _create(self, customer: int) -> dict[str, Any]:
        with self.client.post(CONVERSATIONS, json={"customer_id": customer}, headers=self.auth,
                              name=f"POST {CONVERSATIONS}", catch_response=True) as resp:
            body = _json(resp)
            if not _check(resp, resp.status_code in (200, 201) and isinstance(body, dict)
                          and body.get("artist_id") == self.artist and body.get("customer_id") == customer,
                          "get-or-create"):
                raise RescheduleTask()
            return dict(body)

    def _seed_history(self, conversation_id: int, customer: int) -> None:
        """Give a new conversation a history to page through: keys are fixed, so a rerun stores nothing."""
        customer_auth = {"Authorization": f"Bearer {mint(self.config, customer, 'customer')}"}
        for k in range(HISTORY_SEED):
            self._send(conversation_id, f"rest-{conversation_id}-{k}", customer_auth)

    def _send(self, conversation_id: int, key: str, auth: dict[str, str]) -> None:
        with self.client.post(MESSAGES.format(id=conversation_id), json={"client_message_id": key,
                              "body": f"history message {key}"}, headers=auth, name=f"POST {MESSAGES}",
                              catch_response=True) as resp:
            body = _json(resp)
            _check(resp, resp.status_code in (200, 201) and isinstance(body, dict)
                   and body.get("client_message_id") == key and body.get("conversation_id") == conversation_id,
                   "send")

    @task(5)
    def inbox(self) -> None:
        """The inbox, newest activity first; sometimes the next page."""
        url = f"{CONVERSATIONS}?limit=20"
        for _page in range(2):
            with self.client.get(url, headers=self.auth, name=f"GET {CONVERSATIONS}", catch_response=True) as resp:
                body = _json(resp)
                items = body.get("items") if isinstance(body, dict) else None
                if not _check(resp, resp.status_code == 200 and isinstance(items, list), "inbox"):
                    return
                assert isinstance(body, dict) and isinstance(items, list)
                keys = [(_when(c.get("last_message_at") or c.get("created_at")), c["id"]) for c in items]
                if not _check(resp, keys == sorted(keys, reverse=True)
                              and all(self.artist == c.get("artist_id") for c in items)
                              and all(isinstance(c.get("unread_count"), int) and c["unread_count"] >= 0
                                      for c in items), "inbox order or ownership"):
                    return
            cursor = body.get("next_cursor")
            if not cursor or random.random() < 0.7:
                return
            url = f"{CONVERSATIONS}?limit=20&cursor={cursor}"

    @task(4)
    def history(self) -> None:
        """A conversation's newest messages, then one or two pages back."""
        conv = random.choice(self.conversations)
        url = MESSAGES.format(id=conv) + "?limit=50"
        last_id: int | None = None
        for _page in range(random.randint(1, 3)):
            with self.client.get(url, headers=self.auth, name=f"GET {MESSAGES}", catch_response=True) as resp:
                body = _json(resp)
                items = body.get("items") if isinstance(body, dict) else None
                if not _check(resp, resp.status_code == 200 and isinstance(items, list), "history"):
                    return
                assert isinstance(body, dict) and isinstance(items, list)
                ids = [m["id"] for m in items]
                if not _check(resp, ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
                              and (last_id is None or not ids or ids[0] < last_id)
                              and all(m.get("conversation_id") == conv for m in items), "history order"):
                    return
                if ids:
                    last_id = ids[-1]
            cursor = body.get("next_cursor")
            if not cursor:
                return
            url = MESSAGES.format(id=conv) + f"?limit=50&cursor={cursor}"

    @task(3)
    def unread(self) -> None:
        with self.client.get("/messaging/unread-count", headers=self.auth, name="GET /messaging/unread-count",
                             catch_response=True) as resp:
            body = _json(resp)
            _check(resp, resp.status_code == 200 and isinstance(body, dict)
                   and isinstance(body.get("unread_count"), int) and body["unread_count"] >= 0, "unread count")

    @task(2)
    def mark_read(self) -> None:
        conv = random.choice(self.conversations)
        with self.client.post(ONE.format(id=conv) + "/read", json={}, headers=self.auth,
                              name=f"POST {ONE}/read", catch_response=True) as resp:
            body = _json(resp)
            _check(resp, resp.status_code == 200 and isinstance(body, dict) and body.get("id") == conv
                   and body.get("unread_count") == 0, "mark read")

    @task(1)
    def archive_and_back(self) -> None:
        conv = random.choice(self.conversations)
        for action, status in (("archive", "archived"), ("unarchive", "active")):
            with self.client.post(ONE.format(id=conv) + f"/{action}", headers=self.auth,
                                  name=f"POST {ONE}/{action}", catch_response=True) as resp:
                body = _json(resp)
                if not _check(resp, resp.status_code == 200 and isinstance(body, dict)
                              and body.get("status") == status, action):
                    return

    @task(1)
    def conversation(self) -> None:
        conv = random.choice(self.conversations)
        with self.client.get(ONE.format(id=conv), headers=self.auth, name=f"GET {ONE}", catch_response=True) as resp:
            body = _json(resp)
            _check(resp, resp.status_code == 200 and isinstance(body, dict) and body.get("id") == conv
                   and body.get("artist_id") == self.artist, "conversation")

    @task(2)
    def reply(self) -> None:
        conv = random.choice(self.conversations)
        self._send(conv, f"rest-{os.getpid()}-{self.index}-{time.time_ns()}", self.auth)


class UploadUser(FastHttpUser):
    """A customer sending photos: presign, PUT the bytes to S3, then the image message."""

    abstract = True
    config: Config
    wait_time = between(2, 4)

    def on_start(self) -> None:
        cfg = self.config
        self.index = RUN.next_index("upload", getattr(self.environment.runner, "worker_index", 0), cfg.pair_stride)
        self.customer, self.artist = cfg.upload_ids(self.index)
        RUN.started.wait()
        self.auth = {"Authorization": f"Bearer {mint(cfg, self.customer, 'customer')}"}
        with self.client.post(CONVERSATIONS, json={"artist_id": self.artist}, headers=self.auth,
                              name=f"POST {CONVERSATIONS}", catch_response=True) as resp:
            body = _json(resp)
            if not _check(resp, resp.status_code in (200, 201) and isinstance(body, dict)
                          and body.get("customer_id") == self.customer, "get-or-create"):
                raise RescheduleTask()
            self.conversation_id = int(body["id"])

    @task
    def photo(self) -> None:
        size = random.randint(20_000, 200_000)
        with self.client.post("/messaging/uploads", json={"content_type": "image/jpeg", "size": size},
                              headers=self.auth, name="POST /messaging/uploads", catch_response=True) as resp:
            grant = _json(resp)
            if not _check(resp, resp.status_code == 201 and isinstance(grant, dict)
                          and str(grant.get("upload_url", "")).startswith("http") and grant.get("method") == "PUT",
                          "presign"):
                return
        assert isinstance(grant, dict)
        data = b"\xff\xd8\xff\xe0" + os.urandom(size - 4)
        headers = dict(grant.get("headers") or {})
        # FastHttpSession's annotation says str | dict; it sends bytes as they are
        with self.client.request("PUT", grant["upload_url"], data=data,  # type: ignore[arg-type]
                                 headers=headers, name="PUT {upload_url}", catch_response=True) as resp:
            if not _check(resp, resp.status_code == 200, "S3 PUT"):
                return
        key = f"up-{os.getpid()}-{self.index}-{time.time_ns()}"
        with self.client.post(MESSAGES.format(id=self.conversation_id),
                              json={"client_message_id": key, "image_key": grant["image_key"]},
                              headers=self.auth, name=f"POST {MESSAGES}", catch_response=True) as resp:
            body = _json(resp)
            _check(resp, resp.status_code == 201 and isinstance(body, dict) and body.get("kind") == "image"
                   and body.get("image_key") == grant["image_key"] and bool(body.get("image_url")), "image message")
