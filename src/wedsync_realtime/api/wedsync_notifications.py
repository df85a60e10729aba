"""The caller's notification centre over REST; every change goes live on ``user:{id}``.

Issue 5, "Journeys and notifications": list (filter by type, unread only), unread count, mark
read/unread, dismiss, clear all. Each change publishes one event on the caller's ``user:`` channel
carrying the new ``unread_count``, so every open tab of that user updates its badge at once. A
notification of someone else answers 404, as an unknown one (ids do not leak). Operators (service
role, admins) create notifications for any user (announcements, invitations sent elsewhere).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from wedsync_realtime.api.wedsync import ERROR_RESPONSES, ActorDep, WeddingDep, operator
from wedsync_realtime.auth.jwt import Principal
from wedsync_realtime.wedding.notifications import Notification, NotificationDraft, Priority

__all__ = ["router"]

router = APIRouter(
    prefix="/api/wedsync/notifications", tags=["notifications"], responses=ERROR_RESPONSES
)


class NotificationOut(BaseModel):
    notification_id: str
    user_id: str
    type: str
    title: str
    message: str
    action_url: str | None = None
    priority: Priority
    read: bool
    dismissed: bool
    created_at: str

    @classmethod
    def of(cls, notification: Notification) -> NotificationOut:
        return cls.model_validate(notification.to_json())


class NotificationList(BaseModel):
    notifications: list[NotificationOut] = Field(description="Newest first; dismissed excluded")
    unread_count: int


class UnreadCount(BaseModel):
    unread_count: int


class NotificationChanged(BaseModel):
    notification: NotificationOut
    unread_count: int


class Cleared(BaseModel):
    dismissed: list[str] = Field(description="Ids of the notifications dismissed")
    unread_count: int


class NotificationCreate(BaseModel):
    user_id: str = Field(min_length=1, max_length=128)
    type: str = Field(min_length=1, max_length=64, examples=["announcement", "invitation"])
    title: str = Field(min_length=1, max_length=200)
    message: str = Field(max_length=2000)
    action_url: str | None = Field(default=None, max_length=2000)
    priority: Priority = Priority.MEDIUM


@router.get("")
async def list_notifications(
    actor: ActorDep,
    wedding: WeddingDep,
    type: Annotated[str | None, Query(max_length=64, description="Only this type")] = None,
    unread: Annotated[bool, Query(description="Only unread ones")] = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> NotificationList:
    """The caller's notifications, newest first."""
    notifications = wedding.notifications
    found = await notifications.list(actor.user_id, type=type, unread_only=unread, limit=limit)
    return NotificationList(
        notifications=[NotificationOut.of(n) for n in found],
        unread_count=await notifications.unread_count(actor.user_id),
    )


@router.get("/unread-count")
async def unread_count(actor: ActorDep, wedding: WeddingDep) -> UnreadCount:
    """The caller's bell badge."""
    return UnreadCount(unread_count=await wedding.notifications.unread_count(actor.user_id))


async def _changed(
    wedding: WeddingDep, user_id: str, notification: Notification
) -> NotificationChanged:
    return NotificationChanged(
        notification=NotificationOut.of(notification),
        unread_count=await wedding.notifications.unread_count(user_id),
    )


@router.post("/{notification_id}/read")
async def mark_read(
    notification_id: str, actor: ActorDep, wedding: WeddingDep
) -> NotificationChanged:
    """Mark read (``notification_read`` on ``user:{id}``; nothing when it already was)."""
    outcome = await wedding.notifications.mark_read(actor.user_id, notification_id, read=True)
    return await _changed(wedding, actor.user_id, await wedding.deliver(outcome))


@router.post("/{notification_id}/unread")
async def mark_unread(
    notification_id: str, actor: ActorDep, wedding: WeddingDep
) -> NotificationChanged:
    """Mark unread again (``notification_read`` with ``read: false``)."""
    outcome = await wedding.notifications.mark_read(actor.user_id, notification_id, read=False)
    return await _changed(wedding, actor.user_id, await wedding.deliver(outcome))


@router.post("/{notification_id}/dismiss")
async def dismiss(
    notification_id: str, actor: ActorDep, wedding: WeddingDep
) -> NotificationChanged:
    """Dismiss one (it leaves the list and the count: ``notification_dismissed``)."""
    outcome = await wedding.notifications.dismiss(actor.user_id, notification_id)
    return await _changed(wedding, actor.user_id, await wedding.deliver(outcome))


@router.post("/clear")
async def clear_all(actor: ActorDep, wedding: WeddingDep) -> Cleared:
    """Dismiss every notification of the caller (one ``notification_dismissed`` listing them)."""
    ids = await wedding.deliver(await wedding.notifications.clear_all(actor.user_id))
    return Cleared(
        dismissed=ids, unread_count=await wedding.notifications.unread_count(actor.user_id)
    )


@router.post("", status_code=201)
async def create_notification(
    body: NotificationCreate,
    _operator: Annotated[Principal, Depends(operator)],
    wedding: WeddingDep,
) -> NotificationChanged:
    """Create a notification for a user (service role or admin): ``notification_new``."""
    outcome = await wedding.notifications.create(
        NotificationDraft(
            user_id=body.user_id,
            type=body.type,
            title=body.title,
            message=body.message,
            action_url=body.action_url,
            priority=body.priority,
        )
    )
    return await _changed(wedding, body.user_id, await wedding.deliver(outcome))
