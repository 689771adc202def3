using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Dnm.Core.Tests.Telemetry;

/// <summary>One measurement as an exporter receives it.</summary>
public sealed record Measured(string Instrument, double Value, IReadOnlyDictionary<string, string> Labels);

/// <summary>Records every measurement of the meters with one scope, as an exporter would (started before them).</summary>
public sealed class MeasurementLog : IDisposable
{
    private readonly MeterListener listener = new();

    public MeasurementLog(object scope)
    {
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Scope == scope) l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Add(i, v, tags));
        listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Add(i, v, tags));
        listener.Start();
    }

    public ConcurrentQueue<Measured> All { get; } = new();

    public Measured[] Of(string instrument) => All.Where(m => m.Instrument == instrument).ToArray();

    public Measured[] Of(string instrument, string label, string value) => Of(instrument).Where(m => m.Labels.GetValueOrDefault(label) == value).ToArray();

    /// <summary>Reads the observable instruments now, as a scrape does.</summary>
    public void Collect() => listener.RecordObservableInstruments();

    private void Add(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var labels = new Dictionary<string, string>();
        foreach (var t in tags) labels[t.Key] = Convert.ToString(t.Value, System.Globalization.CultureInfo.InvariantCulture) ?? "";
        All.Enqueue(new Measured(instrument.Name, value, labels));
    }

    public void Dispose() => listener.Dispose();
}
