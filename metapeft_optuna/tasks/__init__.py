"""Tasks: datasets plus how to prompt and score them, their meta-features, the zoo."""

from .characteristics import TaskCharacteristics
from .formats import load_task_file
from .loading import list_tasks, load_task
from .task import DOMAINS, TASK_TYPES, Example, Task, TaskSplits, normalize_answer

__all__ = [
    "DOMAINS",
    "TASK_TYPES",
    "Example",
    "Task",
    "TaskCharacteristics",
    "TaskSplits",
    "list_tasks",
    "load_task",
    "load_task_file",
    "normalize_answer",
]
