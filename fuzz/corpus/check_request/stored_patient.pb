

sertraline3
1http://www.nlm.nih.gov/research/umls/rxnorm|36437p1