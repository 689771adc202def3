namespace Dnm.Core.Training;

public enum TrainingPhase
{
    /// <summary>Autoencoder alone, on reconstruction loss.</summary>
    Pretrain,
    /// <summary>The SOM alone, on the pre-trained embeddings.</summary>
    SomPretrain,
    /// <summary>KL + reconstruction + L2, Adam and the Kohonen rule together.</summary>
    Joint,
    Done,
}

public static class TrainingPhases
{
    /// <summary>The phase's name in logs, metrics.jsonl and traces.</summary>
    public static string Name(this TrainingPhase phase) => phase switch
    {
        TrainingPhase.Pretrain => "pretrain",
        TrainingPhase.SomPretrain => "som-pretrain",
        TrainingPhase.Joint => "joint",
        _ => "done",
    };
}

/// <summary>
/// Where a run stands: the data cursor and the step counters. With the config and the tensors it is
/// everything a checkpoint needs, because the sampler is a pure function of (seed, epoch, rank, world).
/// </summary>
public sealed record RunState
{
    public TrainingPhase Phase { get; init; } = TrainingPhase.Pretrain;
    /// <summary>Epoch within the phase (SOM pre-training: pass over the embeddings).</summary>
    public int Epoch { get; init; }
    /// <summary>Next step (or SOM iteration) within the epoch.</summary>
    public int StepInEpoch { get; init; }
    /// <summary>Steps and SOM iterations completed in the current phase (the schedule's n in SomPretrain / Joint).</summary>
    public long PhaseStep { get; init; }
    /// <summary>All optimisation steps completed across phases.</summary>
    public long GlobalStep { get; init; }
}
