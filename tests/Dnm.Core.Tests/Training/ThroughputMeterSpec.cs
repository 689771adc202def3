using Dnm.Core.Training;

namespace Dnm.Core.Tests.Training;

public sealed class ThroughputMeterSpec
{
    private static TimeSpan S(double seconds) => TimeSpan.FromSeconds(seconds);

    [Fact]
    public void Should_know_no_rate_until_two_records()
    {
        var meter = new ThroughputMeter();
        meter.Start(100);
        Assert.Null(meter.SamplesPerSecond);
        meter.Record(S(1), 64, 1);
        Assert.Null(meter.SamplesPerSecond);
        Assert.Null(meter.Remaining);
        meter.Record(S(3), 64, 2);
        Assert.Equal(32, meter.SamplesPerSecond);
        Assert.Equal(0.5, meter.StepsPerSecond);
        Assert.Equal(S(196), meter.Remaining); // 98 steps at 2 s each
    }

    [Fact]
    public void Should_average_over_the_window_only()
    {
        var meter = new ThroughputMeter(S(1));
        meter.Start(1000);
        // 20 slow steps (1 s each), then 20 fast ones (0.1 s each): after them the 1 s window holds only fast steps.
        var ms = 0;
        var step = 0;
        for (; step < 20; step++) meter.Record(TimeSpan.FromMilliseconds(ms += 1000), 100, step + 1);
        Assert.Equal(100, meter.SamplesPerSecond!.Value, 6);
        for (; step < 40; step++) meter.Record(TimeSpan.FromMilliseconds(ms += 100), 100, step + 1);
        Assert.Equal(1000, meter.SamplesPerSecond!.Value, 6);
        Assert.Equal(S(96), meter.Remaining); // 960 steps left at 10 per second
    }

    [Fact]
    public void Should_keep_a_rate_when_steps_are_slower_than_the_window()
    {
        var meter = new ThroughputMeter(S(1));
        meter.Start(10);
        meter.Record(S(0), 10, 1);
        meter.Record(S(5), 10, 2);
        meter.Record(S(10), 10, 3);
        Assert.Equal(2, meter.SamplesPerSecond);
        Assert.Equal(S(35), meter.Remaining);
    }

    [Fact]
    public void Should_forget_the_previous_phase_on_start()
    {
        var meter = new ThroughputMeter();
        meter.Start(10);
        meter.Record(S(0), 10, 1);
        meter.Record(S(1), 10, 2);
        meter.Start(50);
        Assert.Null(meter.SamplesPerSecond);
        Assert.Equal(0, meter.Position);
        Assert.Equal(50, meter.TotalSteps);
    }

    [Fact]
    public void Should_say_nothing_is_left_at_the_end_and_nothing_is_known_without_a_total()
    {
        var meter = new ThroughputMeter();
        meter.Start(2);
        meter.Record(S(0), 1, 1);
        meter.Record(S(1), 1, 2);
        Assert.Equal(TimeSpan.Zero, meter.Remaining);
        meter.Start(0);
        meter.Record(S(0), 1, 1);
        meter.Record(S(1), 1, 2);
        Assert.Null(meter.Remaining);
    }
}
