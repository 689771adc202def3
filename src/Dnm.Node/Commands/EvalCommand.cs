using System.CommandLine;
using System.Text.Json;

namespace Dnm.Node.Commands;

/// <summary>`dnm eval`: the quality of a checkpoint's map on a dataset, as JSON on stdout (messages go to stderr).</summary>
public static class EvalCommand
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static Command Create(CliContext context)
    {
        var inputs = new CheckpointInputs();
        var command = new Command("eval", "Evaluate a checkpoint on a dataset split; prints JSON with purity, nmi, qe, te, recon_mse and accuracy");
        inputs.AddTo(command);
        command.SetAction(parsed =>
        {
            using var session = inputs.Open(parsed, context, context.Error);
            var quality = session.Map.Evaluate(session.Reference, session.Data, context.Cancel);
            context.Out.WriteLine(JsonSerializer.Serialize(quality, Indented));
            return CliErrors.Ok;
        });
        return command;
    }
}
