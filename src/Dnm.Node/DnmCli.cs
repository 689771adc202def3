using System.CommandLine;
using System.CommandLine.Invocation;
using Dnm.Node.Commands;

namespace Dnm.Node;

/// <summary>The `dnm` command line. <see cref="Run(string[], CliContext)"/> is the whole program, callable in-process by tests.</summary>
public static class DnmCli
{
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr) => Run(args, new CliContext(stdout, stderr));

    public static int Run(string[] args, CliContext context)
    {
        try
        {
            var parsed = Build(context).Parse(args);
            // Help clears parse errors (so `dnm train --bogus --help` still shows help); anything else with errors stops here.
            if (parsed.Action is ParseErrorAction || (parsed.Errors.Count > 0 && parsed.Action is null))
                return CliErrors.ReportParseErrors(parsed.Errors, context);
            return parsed.Invoke(new InvocationConfiguration
            {
                Output = context.Out,
                Error = context.Error,
                // Exceptions reach the catch below, which maps them to exit codes in one place.
                EnableDefaultExceptionHandler = false,
                // Program.cs handles Ctrl+C and SIGTERM itself (cancel, then exit 130).
                ProcessTerminationTimeout = null,
            });
        }
        catch (Exception e)
        {
            return CliErrors.Report(e, context);
        }
    }

    public static RootCommand Build(CliContext context) => new("dnm: train and use Deep Neural Maps (a convolutional autoencoder with a Kohonen map on its latent space)")
    {
        TrainCommand.Create(context),
        EvalCommand.Create(context),
        MapCommand.Create(context),
        ExportCommand.Create(context),
        ServeCommand.Create(context),
        ExploreCommand.Create(context),
        DataCommand.Create(context),
        NodeCommand.Create(context),
        CertCommand.Create(context),
    };
}
