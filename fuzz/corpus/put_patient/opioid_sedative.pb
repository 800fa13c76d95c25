
D
ward-3/bed-12
	shellfish"
	oxycodone"
	lorazepam"

zolpidem