using System.CommandLine;

namespace Dnm.Node.Tests;

public sealed class HelpSpec
{
    [Theory]
    [InlineData("train")]
    [InlineData("eval")]
    [InlineData("map")]
    [InlineData("data", "fetch")]
    public void Help_should_list_every_flag_of_the_command(params string[] path)
    {
        var result = Cli.Run([.. path, "--help"]);

        Assert.Equal(0, result.ExitCode);
        Assert.Empty(result.Error);
        Command command = DnmCli.Build(new CliContext(TextWriter.Null, TextWriter.Null));
        foreach (var name in path) command = command.Subcommands.Single(c => c.Name == name);
        Assert.NotEmpty(command.Options);
        foreach (var option in command.Options)
            Assert.Contains(option.Name, result.Out);
    }

    [Fact]
    public void Train_help_should_show_the_defaults()
    {
        var help = Cli.Run("train", "--help").Out;
        Assert.Contains("--map <RxC>", help);
        Assert.Contains("[default: 20x30]", help);
        Assert.Contains("--resume", help);
        Assert.Contains("--config", help);
    }

    [Fact]
    public void Root_help_should_list_the_commands()
    {
        var help = Cli.Run("--help").Out;
        foreach (var command in new[] { "train", "eval", "map", "data" }) Assert.Contains(command, help);
    }
}
