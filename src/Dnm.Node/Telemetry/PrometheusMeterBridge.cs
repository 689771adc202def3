using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Prometheus;

namespace Dnm.Node.Telemetry;

/// <summary>
/// Publishes the instruments of chosen <see cref="Meter"/>s in a prometheus-net registry under their
/// own names and with their Prometheus types. prometheus-net's MeterAdapter would prefix every name with
/// the meter's ("dnm_dnm_train_samples_total") and publish counters as gauges; Dnm's instruments are
/// already named by Prometheus conventions, so this bridge keeps them as they are.
/// </summary>
public sealed class PrometheusMeterBridge : IDisposable
{
    private readonly MeterListener listener = new();
    private readonly ConcurrentDictionary<Instrument, Sink> sinks = new();

    /// <param name="include">Which meters to publish; it sees each meter when its first instrument appears.</param>
    public PrometheusMeterBridge(CollectorRegistry registry, Func<Meter, bool> include)
    {
        var factory = Prometheus.Metrics.WithCustomRegistry(registry);
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (include(instrument.Meter)) l.EnableMeasurementEvents(instrument, sinks.GetOrAdd(instrument, i => new Sink(i, factory)));
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, state) => ((Sink)state!).Record(value, tags));
        listener.SetMeasurementEventCallback<int>((_, value, tags, state) => ((Sink)state!).Record(value, tags));
        listener.SetMeasurementEventCallback<double>((_, value, tags, state) => ((Sink)state!).Record(value, tags));
        listener.Start();
        // Observable instruments (device memory) are read when Prometheus scrapes, not on a timer.
        registry.AddBeforeCollectCallback(listener.RecordObservableInstruments);
    }

    public void Dispose() => listener.Dispose();

    private enum Kind { Counter, CumulativeCounter, Gauge, UpDown, Histogram }

    /// <summary>
    /// One instrument's Prometheus collector. Label names are only known from the first measurement's
    /// tags, so the collector is created then; every later measurement must carry the same tag keys.
    /// </summary>
    private sealed class Sink(Instrument instrument, IMetricFactory factory)
    {
        private readonly Kind kind = KindOf(instrument);
        private readonly Lock gate = new();
        private string[]? labelNames;
        private volatile Collector? collector; // written after labelNames, so a reader that sees it sees them

        public void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var values = LabelValues(tags);
            switch (collector)
            {
                case Counter c when kind == Kind.CumulativeCounter: c.WithLabels(values).IncTo(value); break;
                case Counter c: c.WithLabels(values).Inc(value); break;
                case Gauge g when kind == Kind.UpDown: g.WithLabels(values).Inc(value); break;
                case Gauge g: g.WithLabels(values).Set(value); break;
                case Histogram h: h.WithLabels(values).Observe(value); break;
            }
        }

        private string[] LabelValues(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            if (collector is null) Create(tags);
            var names = labelNames!;
            if (tags.Length != names.Length)
                throw new InvalidOperationException($"{instrument.Name}: measured with {tags.Length} labels, first measured with {names.Length}");
            var values = new string[names.Length];
            foreach (var tag in tags)
            {
                var at = Array.IndexOf(names, tag.Key);
                if (at < 0) throw new InvalidOperationException($"{instrument.Name}: label '{tag.Key}' was not on its first measurement");
                values[at] = Convert.ToString(tag.Value, System.Globalization.CultureInfo.InvariantCulture) ?? "";
            }
            return values;
        }

        private void Create(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var names = new string[tags.Length];
            for (var i = 0; i < tags.Length; i++) names[i] = tags[i].Key;
            lock (gate)
            {
                if (collector is not null) return;
                var help = instrument.Description ?? instrument.Name;
                labelNames = names;
                collector = kind switch
                {
                    Kind.Counter or Kind.CumulativeCounter => factory.CreateCounter(instrument.Name, help, new CounterConfiguration { LabelNames = names }),
                    Kind.Histogram => factory.CreateHistogram(instrument.Name, help, new HistogramConfiguration { LabelNames = names, Buckets = BucketsOf(instrument) }),
                    _ => factory.CreateGauge(instrument.Name, help, new GaugeConfiguration { LabelNames = names }),
                };
            }
        }

        private static Kind KindOf(Instrument i) => i switch
        {
            Counter<long> or Counter<int> or Counter<double> => Kind.Counter,
            ObservableCounter<long> or ObservableCounter<int> or ObservableCounter<double> => Kind.CumulativeCounter,
            UpDownCounter<long> or UpDownCounter<int> or UpDownCounter<double> => Kind.UpDown,
            Histogram<long> or Histogram<int> or Histogram<double> => Kind.Histogram,
            _ => Kind.Gauge, // Gauge<T>, ObservableGauge<T>, ObservableUpDownCounter<T>: the value is the level
        };

        private static double[]? BucketsOf(Instrument i) => i switch
        {
            Histogram<double> h => h.Advice?.HistogramBucketBoundaries?.ToArray(),
            Histogram<long> h => h.Advice?.HistogramBucketBoundaries?.Select(b => (double)b).ToArray(),
            _ => null,
        };
    }
}
