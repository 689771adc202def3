using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Dnm.Cluster.Tests.Support;

/// <summary>Every measurement of the meters whose scope is this recorder.</summary>
internal sealed class MetricsRecorder : IDisposable
{
    private readonly MeterListener listener = new();
    private readonly ConcurrentQueue<(string Name, double Value, Dictionary<string, string?> Tags)> measurements = new();

    public MetricsRecorder()
    {
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (ReferenceEquals(instrument.Meter.Scope, this)) l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Add(i, v, tags));
        listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Add(i, v, tags));
        listener.Start();
    }

    private void Add(Instrument i, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var d = new Dictionary<string, string?>();
        foreach (var t in tags) d[t.Key] = t.Value?.ToString();
        measurements.Enqueue((i.Name, value, d));
    }

    private IEnumerable<double> Values(string name, string role, string rank, string? direction, string? phase) =>
        measurements.Where(m => m.Name == name && m.Tags["role"] == role && m.Tags["rank"] == rank
                                && (direction is null || m.Tags.GetValueOrDefault("direction") == direction)
                                && (phase is null || m.Tags.GetValueOrDefault("phase") == phase))
            .Select(m => m.Value);

    public double Sum(string name, string role, string rank, string? direction = null) => Values(name, role, rank, direction, null).Sum();

    public double Last(string name, string role, string rank) => Values(name, role, rank, null, null).Last();

    public int Count(string name, string role, string rank, string phase) => Values(name, role, rank, null, phase).Count();

    public void Dispose() => listener.Dispose();
}
