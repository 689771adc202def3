using System.Text.RegularExpressions;
using Dnm.Core.Config;
using Dnm.Core.Evaluation;
using Dnm.Core.Training;
using Dnm.Node.Progress;

namespace Dnm.Node.Tests;

public sealed class ProgressDisplaySpec
{
    private static readonly DnmConfig Config = new() { SomIterations = 300 };

    private static StepReport Step(TrainingPhase phase, int epoch, int step, int stepsPerEpoch = 10, int epochs = 2) =>
        new(phase, epoch, epochs, step, stepsPerEpoch, epoch * stepsPerEpoch + step, 64,
            new StepLoss(0.5, 0.25, 0.001, 0.751, 64), phase == TrainingPhase.Joint ? 3.5 : double.NaN, phase == TrainingPhase.Joint ? 0.25 : double.NaN,
            TimeSpan.FromMilliseconds(100));

    /// <summary>A display and the tracker it reads, fed in the order a run feeds them (tracker first).</summary>
    private static (ITrainingObserver Events, T Display) Fed<T>(ManualClock clock, Func<ProgressTracker, T> create) where T : ITrainingDisplay
    {
        var tracker = new ProgressTracker(Config, clock);
        var display = create(tracker);
        return (new CompositeObserver(tracker, display), display);
    }

    [Fact]
    public void Log_lines_should_come_at_phase_start_epoch_end_and_every_interval()
    {
        var clock = new ManualClock();
        var output = new StringWriter();
        var (log, display) = Fed(clock, t => new LogProgress(output, t, TimeSpan.FromSeconds(10)));
        using (display)
        {
            log.OnPhaseStarted(TrainingPhase.Joint, 2, 10);
            for (var s = 1; s <= 10; s++)
            {
                clock.Advance(TimeSpan.FromSeconds(3)); // 64 samples per 3 s
                log.OnStep(Step(TrainingPhase.Joint, 0, s));
            }
            log.OnEvaluation(new EvaluationReport(TrainingPhase.Joint, 1, 10, new MapQuality(0.9, 0.8, 0.1, 0.05, 0.01), 100, TimeSpan.FromSeconds(1)));
            log.OnCheckpoint("/runs/x/checkpoints/step-000000010.ckpt", 2048, TimeSpan.FromMilliseconds(12));
        }

        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.All(lines, l => Assert.Matches(@"^\[\d\d:\d\d:\d\d\] ", l));
        Assert.Contains("phase joint: 2 epochs x 10 steps", lines[0]);
        var steps = lines.Where(l => l.Contains("joint epoch") && l.Contains(" | ")).ToArray();
        // Step 1 (phase start), steps 5 and 9 (10 s apart: 3 s per step), step 10 (epoch end).
        Assert.Equal(["step 1/10", "step 5/10", "step 9/10", "step 10/10"], steps.Select(l => Regex.Match(l, @"step \d+/\d+").Value));
        Assert.Contains("21 samples/s", steps[^1]);                      // 64 samples / 3 s
        Assert.Contains("kl 0.5 recon 0.25 l2 0.001", steps[^1]);
        Assert.Contains("σ 3.5 η 0.25", steps[^1]);
        Assert.Contains("ETA 0:30", steps[^1]);                          // 10 steps left at 3 s each
        Assert.Contains(lines, l => l.Contains("evaluation (joint epoch 1, step 10, 100 samples, 1.0 s): purity 0.9 nmi 0.8 qe 0.1 te 0.05 recon_mse 0.01"));
        Assert.Contains(lines, l => l.Contains("checkpoint /runs/x/checkpoints/step-000000010.ckpt (2.0 kB, 12 ms)"));
        Assert.Contains("phase joint ended after 10 steps", lines[^1]);
        Assert.DoesNotContain('\r', output.ToString());
    }

    [Fact]
    public void Joint_steps_should_show_the_smoothing_part_only_while_it_is_on()
    {
        var meter = new ThroughputMeter();
        var plain = ProgressText.Status(Step(TrainingPhase.Joint, 0, 1), meter);
        var smoothed = ProgressText.Status(Step(TrainingPhase.Joint, 0, 1) with { Loss = new StepLoss(0.5, 0.25, 0.001, 0.851, 64, Smoothing: 0.04) }, meter);
        Assert.DoesNotContain("smooth", plain);
        Assert.Contains("kl 0.5 recon 0.25 l2 0.001 smooth 0.04", smoothed);
    }

    [Fact]
    public void Som_pretraining_should_count_iterations_not_epochs()
    {
        var clock = new ManualClock();
        var output = new StringWriter();
        var (log, _) = Fed(clock, t => new LogProgress(output, t, TimeSpan.FromSeconds(10)));
        log.OnPhaseStarted(TrainingPhase.SomPretrain, 2, 200);
        clock.Advance(TimeSpan.FromSeconds(1));
        log.OnStep(new StepReport(TrainingPhase.SomPretrain, 0, 2, 100, 200, 0, 6400, default, 2.0, 0.3, TimeSpan.FromSeconds(1)));
        Assert.Contains("som-pretrain iteration 100/300 | - samples/s | ETA - | σ 2 η 0.3", output.ToString());
    }

    [Fact]
    public void Live_display_should_redraw_one_line_and_print_events_above_it()
    {
        var clock = new ManualClock();
        var output = new StringWriter();
        var (live, display) = Fed(clock, t => new LiveProgress(output, t, () => 60));
        using (display)
        {
            live.OnPhaseStarted(TrainingPhase.Pretrain, 1, 4);
            for (var s = 1; s <= 2; s++)
            {
                clock.Advance(TimeSpan.FromSeconds(1));
                live.OnStep(Step(TrainingPhase.Pretrain, 0, s, stepsPerEpoch: 4, epochs: 1));
            }
            live.OnMessage("hello");
        }

        var text = output.ToString();
        var redraws = text.Split("\r\u001b[K").Skip(1).ToArray();
        Assert.Contains(redraws, r => r.StartsWith("[######------]  50% pretrain epoch 1/1 step 2/4", StringComparison.Ordinal));
        // Cut to the terminal's width minus one, so the line never wraps.
        Assert.All(redraws, r => Assert.True(r.Split('\n')[0].Length <= 59, r));
        // The message is a line of its own, then the status is drawn again below it.
        Assert.Matches(@"\r\u001b\[K\[00:00:02\] hello\n\r\u001b\[K\[#", text);
        Assert.EndsWith("\n", text);
    }

    [Fact]
    public void A_log_line_written_inside_a_traced_span_should_end_with_its_trace_id()
    {
        var output = new StringWriter();
        var (_, display) = Fed(new ManualClock(), t => new LogProgress(output, t, TimeSpan.FromSeconds(10)));
        using var activity = new System.Diagnostics.Activity("dnm.step").Start();

        display.Line("inside");
        activity.Stop();
        display.Line("outside");

        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.EndsWith($"inside trace={activity.TraceId.ToHexString()}", lines[0]);
        Assert.EndsWith("outside", lines[1]);
    }
}
