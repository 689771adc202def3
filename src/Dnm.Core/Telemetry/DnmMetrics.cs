using System.Diagnostics.Metrics;
using Dnm.Core.Evaluation;
using Dnm.Core.Training;

namespace Dnm.Core.Telemetry;

/// <summary>
/// Every metric Dnm publishes, as instruments of one <see cref="Meter"/> named "Dnm". Create one per
/// process (or per worker, in a process that hosts several) and pass it to whatever records; the exporters
/// (Prometheus, OTLP) read the meter. Names follow Prometheus conventions (dnm_ prefix, base units,
/// _total on counters) and are used as they are by both exporters, so one query works on either backend.
/// Every measurement carries the labels of <see cref="TelemetryIdentity"/> and nothing per step or sample.
/// </summary>
public sealed class DnmMetrics : IDisposable
{
    public const string MeterName = "Dnm";

    // Steps take from ~1 ms (a tiny model on CPU) to tens of seconds (a large batch on a slow node):
    // doubling buckets from 0.1 ms cover that range with 21 boundaries.
    private static readonly IReadOnlyList<double> DurationBuckets = Enumerable.Range(0, 21).Select(i => 0.0001 * Math.Pow(2, i)).ToArray();

    private readonly KeyValuePair<string, object?>[] labels;
    private readonly KeyValuePair<string, object?>[][] phaseLabels;
    private readonly KeyValuePair<string, object?>[] sentLabels, receivedLabels, nonFiniteLabels, stragglerLabels;
    private readonly KeyValuePair<string, object?>[] klLabels, reconLabels, l2Labels, smoothingLabels, totalLabels;
    private readonly Counter<long> samples, steps, allReduceBytes, membershipChanges, retriedSteps, skippedSteps, excludedRanks;
    private readonly Histogram<double> stepDuration, phaseDuration, checkpointDuration, dataWait;
    private readonly Gauge<double> loss, sigma, eta, qe, te, purity, nmi, reconMse, samplesPerSecond, phaseEta, checkpointSize, workers;

    /// <param name="deviceMemory">Reads (used, total) bytes of the training device; null or returning null where unknown (CPU).</param>
    /// <param name="scope">The meter's <see cref="Meter.Scope"/>. Exporters must listen before the first
    /// measurement (the constructor records the zeros of the counters), so they start first and recognise
    /// this meter by its scope among others of the same name in the process (tests, several workers).</param>
    /// <param name="publishZeros">Records the counters' zeros at once (the default). False for an identity that may
    /// never record anything (a worker node's own, before a world gives its workers their ranks).</param>
    public DnmMetrics(TelemetryIdentity identity, Func<DeviceMemory?>? deviceMemory = null, object? scope = null, bool publishZeros = true)
    {
        Identity = identity;
        labels = identity.Labels();
        phaseLabels = StepTimings.Phases.Select(p => With("phase", StepTimings.Name(p))).ToArray();
        sentLabels = With("direction", "sent");
        receivedLabels = With("direction", "received");
        nonFiniteLabels = With("reason", "non_finite");
        stragglerLabels = With("reason", "straggler");
        klLabels = With("part", "kl");
        reconLabels = With("part", "reconstruction");
        l2Labels = With("part", "l2");
        smoothingLabels = With("part", "smoothing");
        totalLabels = With("part", "total");

        Meter = new Meter(new MeterOptions(MeterName) { Scope = scope });
        samples = Meter.CreateCounter<long>("dnm_train_samples_total", "{sample}", "Samples processed by this process's engine, in every phase");
        steps = Meter.CreateCounter<long>("dnm_train_steps_total", "{step}", "Optimisation steps completed (autoencoder pre-training and joint training)");
        allReduceBytes = Meter.CreateCounter<long>("dnm_allreduce_bytes_total", "By", "Data-plane bytes (headers and payloads) sent and received for reductions");
        membershipChanges = Meter.CreateCounter<long>("dnm_cluster_membership_changes_total", "{change}", "Workers that joined or left the run");
        retriedSteps = Meter.CreateCounter<long>("dnm_train_retried_steps_total", "{step}", "Steps abandoned and retried because the membership changed");
        skippedSteps = Meter.CreateCounter<long>("dnm_train_skipped_steps_total", "{step}", "Steps skipped without an update (reason: non_finite, NaN or infinity in the reduced sums)");
        excludedRanks = Meter.CreateCounter<long>("dnm_cluster_excluded_ranks_total", "{rank}",
            "Ranks a step was retried without (reason: non_finite, their contribution held NaN or infinity; straggler, it had not arrived at the step timeout)");

        var buckets = new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets };
        stepDuration = Meter.CreateHistogram("dnm_train_step_duration_seconds", "s", "Wall time of one optimisation step, data loading included", null, buckets);
        phaseDuration = Meter.CreateHistogram("dnm_train_phase_duration_seconds", "s", "Wall time of one phase of a step (data_wait, encode, soft_count_reduce, backward, gradient_reduce, apply, som_update)", null, buckets);
        dataWait = Meter.CreateHistogram("dnm_data_wait_seconds", "s", "Time one step waited for its batch to be read, decoded and augmented (zero when the prefetch was ready); its sum over the step duration's sum is the data-wait share", null, buckets);
        checkpointDuration = Meter.CreateHistogram("dnm_checkpoint_duration_seconds", "s", "Time to write one checkpoint", null, buckets);

        loss = Meter.CreateGauge<double>("dnm_train_loss", null, "Loss parts of the last step (part: kl, reconstruction, l2, total), means over the global batch");
        sigma = Meter.CreateGauge<double>("dnm_som_sigma", null, "SOM neighbourhood width of the last step, in lattice units");
        eta = Meter.CreateGauge<double>("dnm_som_eta", null, "SOM learning rate of the last step");
        qe = Meter.CreateGauge<double>("dnm_eval_quantization_error", null, "Quantization error of the last evaluation (mean latent distance to the BMU)");
        te = Meter.CreateGauge<double>("dnm_eval_topographic_error", null, "Topographic error of the last evaluation (fraction of samples whose two best nodes are not neighbours)");
        purity = Meter.CreateGauge<double>("dnm_eval_purity", null, "Purity of the last evaluation (labelled data only)");
        nmi = Meter.CreateGauge<double>("dnm_eval_nmi", null, "Normalized mutual information of the last evaluation (labelled data only)");
        reconMse = Meter.CreateGauge<double>("dnm_eval_reconstruction_mse", null, "Reconstruction MSE per pixel of the last evaluation");
        samplesPerSecond = Meter.CreateGauge<double>("dnm_train_samples_per_second", "{sample}/s", "Samples per second over the last ~20 s of the current phase: the console's number");
        phaseEta = Meter.CreateGauge<double>("dnm_train_eta_seconds", "s", "Estimated time to the end of the current phase: the console's ETA");
        checkpointSize = Meter.CreateGauge<double>("dnm_checkpoint_size_bytes", "By", "Size of the last checkpoint written");
        workers = Meter.CreateGauge<double>("dnm_cluster_workers", "{worker}", "Workers in the run's current membership");
        if (deviceMemory is not null)
        {
            Meter.CreateObservableGauge("dnm_device_memory_used_bytes", () => Observe(deviceMemory, m => m.Used), "By", "Memory in use on the training device (the whole device, as the driver reports it)");
            Meter.CreateObservableGauge("dnm_device_memory_total_bytes", () => Observe(deviceMemory, m => m.Total), "By", "Memory of the training device");
        }

        // Counters that stay at zero in a single process still get their series, so dashboards show 0, not "no data".
        if (!publishZeros) return;
        foreach (var counter in new[] { samples, steps, membershipChanges, retriedSteps }) counter.Add(0, labels);
        allReduceBytes.Add(0, sentLabels);
        allReduceBytes.Add(0, receivedLabels);
        skippedSteps.Add(0, nonFiniteLabels);
        excludedRanks.Add(0, nonFiniteLabels);
        excludedRanks.Add(0, stragglerLabels);
    }

    public Meter Meter { get; }
    public TelemetryIdentity Identity { get; }

    public void RecordSamples(int count) => samples.Add(count, labels);

    /// <summary>One optimisation step: counts it, and records its duration and, when known, its phases'.</summary>
    public void RecordStep(TimeSpan duration, StepTimings? timings)
    {
        steps.Add(1, labels);
        stepDuration.Record(duration.TotalSeconds, labels);
        if (timings is null) return;
        dataWait.Record(timings[StepPhase.DataWait].TotalSeconds, labels);
        foreach (var phase in StepTimings.Phases) phaseDuration.Record(timings[phase].TotalSeconds, phaseLabels[(int)phase]);
    }

    public void SetLoss(StepLoss value)
    {
        loss.Record(value.Kl, klLabels);
        loss.Record(value.Reconstruction, reconLabels);
        loss.Record(value.L2, l2Labels);
        // Only while the graph-smoothing term is on: a series that exists only when the term does.
        if (value.Smoothing is { } smoothing) loss.Record(smoothing, smoothingLabels);
        loss.Record(value.Total, totalLabels);
    }

    public void SetSchedule(double sigmaValue, double etaValue)
    {
        sigma.Record(sigmaValue, labels);
        eta.Record(etaValue, labels);
    }

    /// <summary>Purity and NMI are only set for labelled data: a missing number must not read as a bad one.</summary>
    public void SetQuality(MapQuality quality)
    {
        qe.Record(quality.Qe, labels);
        te.Record(quality.Te, labels);
        reconMse.Record(quality.ReconMse, labels);
        if (quality.Purity is { } p) purity.Record(p, labels);
        if (quality.Nmi is { } n) nmi.Record(n, labels);
    }

    /// <summary>The console's throughput and ETA; NaN while unknown (the first step of a phase).</summary>
    public void SetProgress(double? perSecond, TimeSpan? remaining)
    {
        samplesPerSecond.Record(perSecond ?? double.NaN, labels);
        phaseEta.Record(remaining?.TotalSeconds ?? double.NaN, labels);
    }

    public void RecordCheckpoint(long bytes, TimeSpan duration)
    {
        checkpointDuration.Record(duration.TotalSeconds, labels);
        checkpointSize.Record(bytes, labels);
    }

    public void SetWorkers(int count) => workers.Record(count, labels);

    public void RecordMembershipChange() => membershipChanges.Add(1, labels);

    public void RecordRetriedStep() => retriedSteps.Add(1, labels);

    /// <summary>A step whose reduced sums held NaN or infinity, skipped by every replica (<see cref="NonFiniteSteps"/>).</summary>
    public void RecordSkippedStep() => skippedSteps.Add(1, nonFiniteLabels);

    /// <summary>A rank the coordinator retried a step without: its contribution was non-finite, or it was a straggler.</summary>
    public void RecordExcludedRank(ExclusionReason reason) => excludedRanks.Add(1, reason == ExclusionReason.Straggler ? stragglerLabels : nonFiniteLabels);

    /// <summary>Bytes a reduction moved over the data plane (the deltas, not a connection's running totals).</summary>
    public void RecordAllReduceBytes(long sent, long received)
    {
        allReduceBytes.Add(sent, sentLabels);
        allReduceBytes.Add(received, receivedLabels);
    }

    public void Dispose() => Meter.Dispose();

    private KeyValuePair<string, object?>[] With(string key, string value) => [.. labels, new(key, value)];

    private IEnumerable<Measurement<long>> Observe(Func<DeviceMemory?> read, Func<DeviceMemory, long> pick) =>
        read() is { } m ? [new Measurement<long>(pick(m), labels)] : [];
}

/// <summary>Bytes in use and in total on a device.</summary>
public readonly record struct DeviceMemory(long Used, long Total);

/// <summary>Why the coordinator retried a step without a rank (the reason label of dnm_cluster_excluded_ranks_total).</summary>
public enum ExclusionReason
{
    /// <summary>Its contribution held NaN or infinity.</summary>
    NonFinite,
    /// <summary>Its contribution had not arrived when the step timed out.</summary>
    Straggler,
}
