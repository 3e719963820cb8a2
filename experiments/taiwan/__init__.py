"""Real-data study: the Taiwan credit-card default data (UCI, 2005) carried through callq's contract."""
