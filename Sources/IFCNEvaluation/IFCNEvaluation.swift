// IFCNEvaluation
