"""Policy API: masked actions from the promoted model, training jobs and models."""
