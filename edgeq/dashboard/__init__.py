"""The runs dashboard (a local web page over the runs store), its command and the MLflow hook."""
