using Dnm.Core.Config;
using Dnm.Core.Data;
using Dnm.Core.Training;

namespace Dnm.Node.Tests;

public sealed class CliErrorsSpec
{
    public static TheoryData<Exception, int> Cases => new()
    {
        { new ConfigException("bad"), 2 },
        { new DatasetSpecException("bad spec"), 2 },
        { new DataException("missing"), 3 },
        { new CheckpointException("corrupt"), 3 },
        { new OperationCanceledException(), 130 },
        { new InvalidOperationException("boom"), 1 },
        { new AggregateException(new DataException("inside a task")), 3 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Should_map_each_failure_to_its_exit_code(Exception error, int exitCode) =>
        Assert.Equal(exitCode, CliErrors.ExitCodeOf(error));

    [Fact]
    public void Should_keep_a_multi_line_message_on_one_line()
    {
        var err = new StringWriter();
        CliErrors.Report(new DataException("first\nsecond"), new CliContext(TextWriter.Null, err));
        Assert.Equal("error: first second" + Environment.NewLine, err.ToString());
    }

    [Fact]
    public void Should_print_the_stack_trace_only_in_debug_mode()
    {
        Exception thrown;
        try { throw new InvalidOperationException("boom"); }
        catch (InvalidOperationException e) { thrown = e; }

        var quiet = new StringWriter();
        Assert.Equal(1, CliErrors.Report(thrown, new CliContext(TextWriter.Null, quiet)));
        Assert.Single(quiet.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("DNM_DEBUG=1", quiet.ToString());

        var debug = new StringWriter();
        CliErrors.Report(thrown, new CliContext(TextWriter.Null, debug) { Debug = true });
        Assert.Contains(nameof(Should_print_the_stack_trace_only_in_debug_mode), debug.ToString());
    }
}
