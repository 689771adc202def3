using Dnm.Core.Config;
using Dnm.Core.Evaluation;
using Dnm.Core.Telemetry;
using Dnm.Core.Training;

namespace Dnm.Core.Tests.Telemetry;

public sealed class DnmMetricsSpec : IDisposable
{
    private static readonly TelemetryIdentity Identity = new("worker", 3, "cuda:1");
    private readonly object scope = new();
    private readonly MeasurementLog log;
    private readonly DnmMetrics metrics;
    private readonly ProgressTracker tracker;
    private readonly ITrainingObserver events;

    public DnmMetricsSpec()
    {
        log = new MeasurementLog(scope);
        metrics = new DnmMetrics(Identity, () => new DeviceMemory(3_000, 8_000), scope);
        tracker = new ProgressTracker(new DnmConfig { SomIterations = 200 }, TimeProvider.System);
        events = new CompositeObserver(tracker, new MetricsObserver(metrics, tracker));
    }

    public void Dispose()
    {
        metrics.Dispose();
        log.Dispose();
    }

    private static StepReport Step(TrainingPhase phase, int step, StepTimings? timings = null) =>
        new(phase, 0, 1, step, 10, step, 64, new StepLoss(0.5, 0.25, 0.001, 0.751, 64), phase == TrainingPhase.Joint ? 3.5 : double.NaN,
            phase == TrainingPhase.Joint ? 0.25 : double.NaN, TimeSpan.FromMilliseconds(100), timings);

    [Fact]
    public void Counters_should_exist_at_zero_before_anything_happens()
    {
        foreach (var name in new[] { "dnm_train_samples_total", "dnm_train_steps_total", "dnm_cluster_membership_changes_total", "dnm_train_retried_steps_total" })
            Assert.Equal(0.0, Assert.Single(log.Of(name)).Value);
        Assert.Equal(0.0, Assert.Single(log.Of("dnm_allreduce_bytes_total", "direction", "sent")).Value);
        Assert.Equal(0.0, Assert.Single(log.Of("dnm_allreduce_bytes_total", "direction", "received")).Value);
    }

    [Fact]
    public void A_skipped_step_should_count_as_non_finite_and_leave_the_loss_gauges_at_the_last_applied_step()
    {
        Assert.Equal(0.0, Assert.Single(log.Of("dnm_train_skipped_steps_total", "reason", "non_finite")).Value);
        events.OnPhaseStarted(TrainingPhase.Joint, 1, 10);
        events.OnStep(Step(TrainingPhase.Joint, 1));
        events.OnStep(Step(TrainingPhase.Joint, 2) with { Loss = new StepLoss(double.NaN, 0.25, 0.001, double.NaN, 64, Skipped: true) });
        log.Collect();
        Assert.Equal(1.0, log.Of("dnm_train_skipped_steps_total", "reason", "non_finite").Sum(m => m.Value));
        Assert.Equal(0.751, log.Of("dnm_train_loss", "part", "total").Last().Value);
        Assert.Equal(2.0, log.Of("dnm_train_steps_total").Sum(m => m.Value));
    }

    [Fact]
    public void Every_measurement_should_carry_the_identity_labels_and_at_most_one_fixed_dimension()
    {
        var timings = new StepTimings();
        timings.Add(StepPhase.Encode, TimeSpan.FromMilliseconds(3));
        events.OnPhaseStarted(TrainingPhase.Joint, 1, 10);
        events.OnStep(Step(TrainingPhase.Joint, 1, timings));
        events.OnEvaluation(new EvaluationReport(TrainingPhase.Joint, 1, 1, new MapQuality(0.9, 0.8, 0.1, 0.05, 0.01), 100, TimeSpan.FromSeconds(1)));
        events.OnCheckpoint("x.ckpt", 2048, TimeSpan.FromMilliseconds(12));
        metrics.RecordAllReduceBytes(10, 20);
        log.Collect();

        Assert.NotEmpty(log.All);
        foreach (var m in log.All)
        {
            Assert.Equal("worker", m.Labels["role"]);
            Assert.Equal("3", m.Labels["rank"]);
            Assert.Equal("cuda:1", m.Labels["device"]);
            var extra = m.Labels.Keys.Except(["role", "rank", "device"]).ToArray();
            Assert.True(extra.Length == 0 || extra is ["phase"] or ["part"] or ["direction"] or ["reason"], $"{m.Instrument}: {string.Join(",", extra)}");
        }
        Assert.Equal(["apply", "backward", "data_wait", "encode", "gradient_reduce", "soft_count_reduce", "som_update"],
            log.Of("dnm_train_phase_duration_seconds").Select(m => m.Labels["phase"]).Order(StringComparer.Ordinal));
        Assert.Equal(3_000.0, Assert.Single(log.Of("dnm_device_memory_used_bytes")).Value);
        Assert.Equal(8_000.0, Assert.Single(log.Of("dnm_device_memory_total_bytes")).Value);
    }

    [Fact]
    public void A_step_should_count_samples_and_steps_and_record_its_phases_loss_and_schedule()
    {
        var timings = new StepTimings();
        timings.Add(StepPhase.Encode, TimeSpan.FromMilliseconds(30));
        timings.Add(StepPhase.SomUpdate, TimeSpan.FromMilliseconds(2));
        events.OnPhaseStarted(TrainingPhase.Joint, 1, 10);
        events.OnStep(Step(TrainingPhase.Joint, 1, timings));

        Assert.Equal(64.0, log.Of("dnm_train_samples_total").Sum(m => m.Value));
        Assert.Equal(1.0, log.Of("dnm_train_steps_total").Sum(m => m.Value));
        Assert.Equal(0.1, Assert.Single(log.Of("dnm_train_step_duration_seconds")).Value, 9);
        Assert.Equal(0.03, Assert.Single(log.Of("dnm_train_phase_duration_seconds", "phase", "encode")).Value, 9);
        Assert.Equal(0.002, Assert.Single(log.Of("dnm_train_phase_duration_seconds", "phase", "som_update")).Value, 9);
        Assert.Equal(0.0, Assert.Single(log.Of("dnm_train_phase_duration_seconds", "phase", "gradient_reduce")).Value);
        Assert.Equal(0.5, Assert.Single(log.Of("dnm_train_loss", "part", "kl")).Value);
        Assert.Equal(0.25, Assert.Single(log.Of("dnm_train_loss", "part", "reconstruction")).Value);
        Assert.Empty(log.Of("dnm_train_loss", "part", "smoothing")); // the term is off: no series, not a zero
        Assert.Equal(3.5, Assert.Single(log.Of("dnm_som_sigma")).Value);
        Assert.Equal(0.25, Assert.Single(log.Of("dnm_som_eta")).Value);
    }

    [Fact]
    public void The_smoothing_part_should_be_recorded_while_the_term_is_on()
    {
        events.OnPhaseStarted(TrainingPhase.Joint, 1, 10);
        events.OnStep(Step(TrainingPhase.Joint, 1) with { Loss = new StepLoss(0.5, 0.25, 0.001, 1.751, 64, Smoothing: 0.1) });
        Assert.Equal(0.1, Assert.Single(log.Of("dnm_train_loss", "part", "smoothing")).Value, 9);
        Assert.Equal(1.751, Assert.Single(log.Of("dnm_train_loss", "part", "total")).Value, 9);
    }

    [Fact]
    public void Som_pretraining_reports_should_count_samples_but_not_steps()
    {
        events.OnPhaseStarted(TrainingPhase.SomPretrain, 1, 10);
        events.OnStep(new StepReport(TrainingPhase.SomPretrain, 0, 1, 100, 10, 0, 6400, default, 2.0, 0.3, TimeSpan.FromSeconds(1)));

        Assert.Equal(6400.0, log.Of("dnm_train_samples_total").Sum(m => m.Value));
        Assert.Equal(0.0, log.Of("dnm_train_steps_total").Sum(m => m.Value));
        Assert.Empty(log.Of("dnm_train_step_duration_seconds"));
        Assert.Empty(log.Of("dnm_train_loss"));
        Assert.Equal(2.0, Assert.Single(log.Of("dnm_som_sigma")).Value);
    }

    [Fact]
    public void Throughput_and_eta_should_be_the_trackers_numbers()
    {
        events.OnPhaseStarted(TrainingPhase.Pretrain, 1, 10);
        for (var s = 1; s <= 4; s++)
        {
            Thread.Sleep(5); // two records apart in time make a rate
            events.OnStep(Step(TrainingPhase.Pretrain, s));
        }

        Assert.True(double.IsNaN(log.Of("dnm_train_samples_per_second")[0].Value), "unknown until the phase has a rate");
        var rate = tracker.Meter.SamplesPerSecond;
        Assert.True(rate is > 0, $"{rate}");
        Assert.Equal(rate!.Value, log.Of("dnm_train_samples_per_second")[^1].Value);
        Assert.Equal(tracker.Meter.Remaining!.Value.TotalSeconds, log.Of("dnm_train_eta_seconds")[^1].Value);
    }

    [Fact]
    public void Purity_and_nmi_should_be_absent_for_unlabelled_data()
    {
        events.OnEvaluation(new EvaluationReport(TrainingPhase.Joint, 1, 1, new MapQuality(null, null, 0.1, 0.05, 0.01), 100, TimeSpan.FromSeconds(1)));

        Assert.Empty(log.Of("dnm_eval_purity"));
        Assert.Empty(log.Of("dnm_eval_nmi"));
        Assert.Equal(0.1, Assert.Single(log.Of("dnm_eval_quantization_error")).Value);
        Assert.Equal(0.05, Assert.Single(log.Of("dnm_eval_topographic_error")).Value);
    }

    [Fact]
    public void Readiness_should_follow_the_first_phase()
    {
        var observer = new MetricsObserver(metrics, tracker);
        Assert.False(observer.Started);
        observer.OnPhaseStarted(TrainingPhase.Pretrain, 1, 10);
        Assert.True(observer.Started);
    }
}
