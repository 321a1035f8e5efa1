"""Names under which studies and trials carry metapeft information in Optuna storages.

The storage *is* the experience: any study whose user attributes hold
:data:`STUDY_TASK` and :data:`STUDY_MODEL` is a source task for the meta-model, and
each of its finished or pruned trials one experience.
"""

from __future__ import annotations

OBJECTIVES = ("accuracy", "peak_memory_mb", "train_seconds")
DIRECTIONS = ("maximize", "minimize", "minimize")

# Study user attributes.
STUDY_TASK = "metapeft_task"  # {"name", "characteristics": TaskCharacteristics.to_dict()}
STUDY_MODEL = "metapeft_model"  # ModelInfo.to_dict()
STUDY_SPACE = "metapeft_search_space"  # {"methods": [...]}
STUDY_RECOMMENDATION = "metapeft_recommendation"  # MethodRecommendation as a dict

# Trial user attributes.
TRIAL_METHOD = "method"
TRIAL_HYPERPARAMETERS = "hyperparameters"
TRIAL_CURVE = "learning_curve"
TRIAL_PARAMETERS = "trainable_parameters"
TRIAL_EVAL_SECONDS = "eval_seconds"
TRIAL_ADAPTER = "adapter_path"
TRIAL_FAIL_REASON = "fail_reason"
TRIAL_PREDICTION = "metapeft_prediction"
