"""nova_mlflow: benchmark vision-language models on NOVA (brain MRI), tracked with MLflow."""

__version__ = "0.1.0"
