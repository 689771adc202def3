namespace Dnm.Core.Config;

// The closed value sets of DnmConfig (the Kohonen rule is Som.SomRule, the bad-image policy Data.BadFilePolicy). In
// JSON and on the command line each is its kebab-case word (KebabEnum).

/// <summary>Which autoencoder: the paper's convolutional one, or DEC's and DPSOM's fully connected one.</summary>
public enum EncoderKind
{
    Conv,
    Mlp,
}

/// <summary>The activation on the embedding z (the authors' code puts a sigmoid there).</summary>
public enum LatentActivation
{
    None,
    Sigmoid,
}

/// <summary>The target distribution P of the KL term.</summary>
public enum TargetDistribution
{
    /// <summary>P computed without gradient, DEC-style, with the global soft counts f.</summary>
    Fixed,
    /// <summary>The authors' code: the gradient flows through P, and P has no 1/f.</summary>
    Authors,
}

/// <summary>What the Kohonen schedule's n counts in the joint phase.</summary>
public enum ScheduleCounter
{
    /// <summary>SOM pre-training's iterations, then joint steps: σ and η keep decaying.</summary>
    Continue,
    /// <summary>Joint steps from 0: σ restarts at σ0.</summary>
    Step,
    /// <summary>Epochs (the paper's pseudo-code): σ stays near σ0.</summary>
    Epoch,
}

/// <summary>What `dnm train --init-from` takes from an exported model.</summary>
public enum InitParts
{
    /// <summary>The autoencoder's weights θ and φ; the prototypes are seeded from the data as usual.</summary>
    Weights,
    /// <summary>The SOM prototypes W; SOM pre-training starts from them instead of seeding them from the data.</summary>
    Prototypes,
    /// <summary>Both.</summary>
    Both,
}
