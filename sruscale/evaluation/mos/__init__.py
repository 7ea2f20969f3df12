"""Subjective evaluation: a blind MOS study server (:mod:`.study`) and its report (:mod:`.report`)."""

from __future__ import annotations

from .report import MethodScore, StudyReport, study_report, write_bar_chart
from .study import GT_METHOD, Study, StudyServer, Trial, create_study, open_study

__all__ = [
    "GT_METHOD",
    "MethodScore",
    "Study",
    "StudyReport",
    "StudyServer",
    "Trial",
    "create_study",
    "open_study",
    "study_report",
    "write_bar_chart",
]
