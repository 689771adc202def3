namespace Dnm.Core.Telemetry;

/// <summary>
/// The parts of one data-parallel step (see architecture.md, "A step, end to end"). A fixed, small set:
/// safe as the <c>phase</c> label of dnm_train_phase_duration_seconds.
/// </summary>
public enum StepPhase
{
    /// <summary>Waiting for this step's batch to be read, decoded and augmented (zero when the prefetch was ready).</summary>
    DataWait,
    /// <summary>Encode and decode the local batch, and the local soft counts f^(k).</summary>
    Encode,
    /// <summary>Summing the soft counts over workers (communication).</summary>
    SoftCountReduce,
    /// <summary>Loss, backward pass and SOM statistics.</summary>
    Backward,
    /// <summary>Summing gradients and SOM statistics over workers (communication).</summary>
    GradientReduce,
    /// <summary>L2 gradient and the Adam step.</summary>
    Apply,
    /// <summary>The Kohonen update of the prototypes.</summary>
    SomUpdate,
}

/// <summary>How long each <see cref="StepPhase"/> of one step took. A phase that did not run took zero.</summary>
public sealed class StepTimings
{
    /// <summary>Every phase, in the enum's order (so a phase's number indexes arrays built from this list).</summary>
    public static readonly IReadOnlyList<StepPhase> Phases = Enum.GetValues<StepPhase>();

    private readonly TimeSpan[] durations = new TimeSpan[Phases.Count];

    public TimeSpan this[StepPhase phase] => durations[(int)phase];

    /// <summary>Time spent exchanging data with other workers; zero in a single process.</summary>
    public TimeSpan Communication => this[StepPhase.SoftCountReduce] + this[StepPhase.GradientReduce];

    /// <summary>Adds to a phase (a phase may run more than once in a step, e.g. when the step is retried).</summary>
    public void Add(StepPhase phase, TimeSpan duration) => durations[(int)phase] += duration;

    /// <summary>The label value of a phase: snake_case, as Prometheus label values usually are.</summary>
    public static string Name(StepPhase phase) => phase switch
    {
        StepPhase.DataWait => "data_wait",
        StepPhase.Encode => "encode",
        StepPhase.SoftCountReduce => "soft_count_reduce",
        StepPhase.Backward => "backward",
        StepPhase.GradientReduce => "gradient_reduce",
        StepPhase.Apply => "apply",
        StepPhase.SomUpdate => "som_update",
        _ => throw new ArgumentOutOfRangeException(nameof(phase), phase, null),
    };
}
