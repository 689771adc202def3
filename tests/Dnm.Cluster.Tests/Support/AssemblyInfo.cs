// Specs of this assembly run one at a time. Torch seeds its global generator when a StepEngine is built,
// so a single-process reference Trainer built while another spec builds engines in the same process
// would get different initial weights; and the multi-process specs need the machine's two cores.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
