namespace Dnm.Core.Telemetry;

/// <summary>
/// Who is reporting: the only labels Dnm's metrics carry. Prometheus keeps one time series per label
/// combination, so labels name the process's part in the run, never a step, sample or file.
/// </summary>
/// <param name="Role">"trainer" for a single-process run; the cluster uses "coordinator" and "worker".</param>
/// <param name="Rank">The worker's rank; 0 in a single-process run.</param>
/// <param name="Device">The torch device the engine runs on, e.g. "cpu" or "cuda:0".</param>
public sealed record TelemetryIdentity(string Role, int Rank, string Device)
{
    public const string SingleProcessRole = "trainer";

    /// <summary>The label set every measurement carries.</summary>
    public KeyValuePair<string, object?>[] Labels() =>
    [
        new("role", Role),
        new("rank", Rank.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        new("device", Device),
    ];
}
