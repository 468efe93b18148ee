"""Calibrate what a good reply means: the baseline model's own replies, and how much they vary.

Replays the recorded run (offline) up to the reply, asks the live embedded model for the reply
`--samples` times at temperature 0.7, and saves the answers with the similarity threshold they
imply to `baseline_replies.json`, which `test_support_agent.py` checks replies against.

    .venv/bin/python examples/support_agent/make_baseline.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

from agent import SupportAgent
from test_support_agent import CONFIG, REPLAY_CASSETTE

from turnout.testing import Cassette, InProcessGateway, Mode, calibrate

HERE = Path(__file__).parent
BASELINE = HERE / "baseline_replies.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=8)
    args = ap.parse_args()
    replay = InProcessGateway(CONFIG, cassette=Cassette.load(REPLAY_CASSETTE, Mode.NONE))
    with replay, replay.openai() as client:
        recorded = SupportAgent(client).run()
    conversation = [
        *recorded.messages,
        {"role": "user", "content": "Now write a short reply to the customer."},
    ]
    answers = []
    with InProcessGateway(CONFIG) as live, live.openai() as client:
        for _ in range(args.samples):
            reply = client.chat.completions.create(
                model="local",
                messages=conversation,  # type: ignore[arg-type]
                temperature=0.7,
                max_tokens=80,
            )
            answers.append(reply.choices[0].message.content or "")
    calibration = calibrate(answers)
    calibration.save(BASELINE)
    c = calibration
    print(
        f"{len(answers)} baseline replies; threshold {c.threshold:.3f} "
        f"(pairwise mean {c.pairwise_mean:.3f}, min {c.pairwise_min:.3f})"
    )


if __name__ == "__main__":
    main()
