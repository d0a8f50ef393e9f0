"""Short meeting scripts the sandbox's conversations are made from.

Each line is ``(speaker index, text)``; insights point at lines by index, so a script reads
like a real meeting and its questions, action items and topics refer to what was said.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Script:
    name: str
    lines: tuple[tuple[int, str], ...]
    topics: tuple[tuple[str, tuple[int, ...]], ...]
    questions: tuple[int, ...]
    action_items: tuple[tuple[int, int], ...]  # (line, assignee speaker)
    follow_ups: tuple[tuple[int, int], ...]
    summary: tuple[tuple[str, tuple[int, ...]], ...]
    tracker: tuple[str, str, int]  # (tracker name, vocabulary value, line)


SCRIPTS = (
    Script(
        name="Weekly product sync",
        lines=(
            (0, "Good morning everyone, let's get started with the weekly product sync."),
            (1, "Sure. The onboarding redesign went out to ten percent of users on Monday."),
            (0, "How are the activation numbers looking so far?"),
            (1, "Activation is up about four percent, but it is still early."),
            (2, "Support tickets about the signup flow dropped as well."),
            (0, "Great. What is blocking the rollout to everyone?"),
            (2, "We still need the billing team to approve the changes to the pricing page."),
            (1, "I will send the rollout plan to the billing team by Thursday."),
            (0, "Let's review the mobile crash reports together next week."),
            (2, "The crash rate on Android went down after the last release."),
            (0, "Good. Anything else before we wrap up?"),
            (1, "No, that's all from me. Thanks everyone."),
        ),
        topics=(
            ("onboarding redesign", (1, 3)),
            ("activation", (2, 3)),
            ("pricing page", (6, 7)),
            ("crash reports", (8, 9)),
        ),
        questions=(2, 5),
        action_items=((7, 1),),
        follow_ups=((8, 0),),
        summary=(
            ("The onboarding redesign reached ten percent of users and lifted activation.", (1, 3)),
            ("The full rollout waits for billing to approve the pricing page changes.", (5, 6, 7)),
        ),
        tracker=("PricingMention", "pricing", 6),
    ),
    Script(
        name="Customer renewal call",
        lines=(
            (0, "Thanks for making time today, I wanted to talk about your renewal."),
            (1, "Of course. We have been happy with the service overall."),
            (0, "Is the team still using the reporting dashboard every day?"),
            (1, "Yes, mostly the weekly exports and the call summaries."),
            (2, "We would like single sign-on before we add more seats."),
            (0, "Single sign-on is on the enterprise plan, which also raises the seat limit."),
            (1, "How much does the enterprise plan cost per seat?"),
            (0, "It is forty dollars per seat per month on an annual contract."),
            (0, "I will send you a quote for fifty seats by Friday."),
            (2, "We should schedule a security review with our IT team next month."),
            (1, "That works for us. Let's plan to sign before the end of the quarter."),
            (0, "Perfect, thank you both."),
        ),
        topics=(
            ("renewal", (0, 10)),
            ("reporting dashboard", (2, 3)),
            ("single sign-on", (4, 5)),
            ("enterprise plan", (5, 6, 7)),
        ),
        questions=(2, 6),
        action_items=((8, 0),),
        follow_ups=((9, 2),),
        summary=(
            ("The customer plans to renew and wants single sign-on before adding seats.", (1, 4)),
            ("A quote for fifty enterprise seats will be sent by Friday.", (7, 8)),
        ),
        tracker=("PricingMention", "How much does it cost", 6),
    ),
    Script(
        name="Incident review",
        lines=(
            (0, "Let's go over yesterday's outage of the notification service."),
            (1, "The queue backed up at three in the afternoon after a configuration change."),
            (2, "Alerts fired within two minutes, but the runbook was out of date."),
            (0, "Why did the deploy pipeline not catch the bad configuration?"),
            (1, "The validation step only checks syntax, not the queue limits."),
            (2, "We rolled back at three twenty and messages drained by four."),
            (0, "Did any customers lose notifications?"),
            (1, "No messages were lost, they were only delayed by up to an hour."),
            (2, "I will update the runbook and add the queue limit check by Wednesday."),
            (0, "Let's revisit the alert thresholds at the next on-call handover."),
            (1, "Agreed. I will also write the public incident report."),
            (0, "Thanks, that covers it."),
        ),
        topics=(
            ("notification outage", (0, 1)),
            ("configuration change", (1, 3, 4)),
            ("runbook", (2, 8)),
            ("alert thresholds", (9,)),
        ),
        questions=(3, 6),
        action_items=((8, 2), (10, 1)),
        follow_ups=((9, 0),),
        summary=(
            ("A configuration change backed up the notification queue for an hour.", (1, 5)),
            ("No messages were lost; the runbook and validation will be improved.", (7, 8)),
        ),
        tracker=("Outage", "outage", 0),
    ),
)

PEOPLE = (
    "Alice Chen", "Bruno Diaz", "Chloe Martin", "Dev Patel", "Emma Novak", "Farid Haddad",
    "Grace Kim", "Hugo Laurent", "Ines Costa", "Jonas Berg", "Keiko Tanaka", "Liam Walsh",
)  # fmt: skip
