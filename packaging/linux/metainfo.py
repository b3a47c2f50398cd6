"""The AppStream metainfo (``/usr/share/metainfo/<APP_ID>.metainfo.xml``) of the Linux packages.

Software centres (GNOME Software, KDE Discover) show its name, summary, description,
screenshots and releases; ``appstreamcli validate --no-net`` must accept it (the build runs it).
Screenshots and the homepage need absolute URLs: they are included only when the project URL
is known (``[project.urls]`` in pyproject.toml, or ``--project-url``), never guessed.
"""

from __future__ import annotations

import datetime as dt
import os
from xml.sax.saxutils import escape

from peft_notify.appinfo import APP_ID, APP_NAME, APP_SUMMARY, CLI_NAME, VERSION

__all__ = ["RELEASES", "metainfo_xml", "release_date"]

# Newest first: (version, ISO date, one-line notes). The current version is added with the
# build date when it is not listed yet.
RELEASES: tuple[tuple[str, str, str], ...] = ()

DESCRIPTION = (
    "You start a fine-tuning job (Transformers + PEFT, Lightning or plain PyTorch) that runs for hours, "
    "switch to other work, and glance at the taskbar to see how far it is. PEFT Notify tells you with your "
    "desktop's own notifications when the job passes 25, 50 and 75 %, finishes, stalls or dies (out of "
    "memory, CUDA error, diverging loss), with Retry and View Details buttons.",
    "Errors get through Do-Not-Disturb; everything else waits and is summarised when you are back. Every "
    "notification is written to a history before it is shown. Jobs on remote GPU servers are followed "
    "over an SSH tunnel; the training side needs no Qt.",
)


def release_date() -> str:
    """Today, or the reproducible-build date (``SOURCE_DATE_EPOCH``)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch else dt.datetime.now(dt.UTC)
    return when.date().isoformat()


def metainfo_xml(project_url: str | None = None, screenshot_url: str | None = None) -> str:
    """The metainfo document; ``project_url``/``screenshot_url`` must be absolute https URLs or None."""
    releases = list(RELEASES)
    if not any(version == VERSION for version, _date, _notes in releases):
        releases.insert(0, (VERSION, release_date(), "First packaged release."))
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<component type="desktop-application">',
        f"  <id>{APP_ID}</id>",
        "  <metadata_license>CC0-1.0</metadata_license>",
        "  <project_license>MIT</project_license>",
        f"  <name>{escape(APP_NAME)}</name>",
        f"  <summary>{escape(APP_SUMMARY)}</summary>",
        "  <developer_name>peft_notify developers</developer_name>",
        "  <description>",
        *(f"    <p>{escape(paragraph)}</p>" for paragraph in DESCRIPTION),
        "  </description>",
        f'  <launchable type="desktop-id">{APP_ID}.desktop</launchable>',
        "  <provides>",
        f"    <binary>{CLI_NAME}</binary>",
        "  </provides>",
        "  <categories>",
        "    <category>Development</category>",
        "  </categories>",
        "  <content_rating type=\"oars-1.1\"/>",
    ]
    if project_url:
        lines.append(f'  <url type="homepage">{escape(project_url)}</url>')
    if screenshot_url:
        lines += [
            "  <screenshots>",
            '    <screenshot type="default">',
            "      <caption>The main window following a simulated fine-tuning job</caption>",
            f"      <image>{escape(screenshot_url)}</image>",
            "    </screenshot>",
            "  </screenshots>",
        ]
    lines.append("  <releases>")
    for version, date, notes in releases:
        lines += [
            f'    <release version="{escape(version)}" date="{escape(date)}">',
            f"      <description><p>{escape(notes)}</p></description>",
            "    </release>",
        ]
    lines += ["  </releases>", "</component>", ""]
    return "\n".join(lines)
